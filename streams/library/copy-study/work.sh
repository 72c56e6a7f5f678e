#!/bin/sh
# An old-appliance bucket script: called as work.sh <INPUT> <OUTPUT>.
# It copies the study's instances to OUTPUT and writes a listing next to them.
set -eu
input="$1"
output="$2"
count=0
for file in "$input"/*; do
  [ -f "$file" ] || continue
  cp "$file" "$output/"
  count=$((count + 1))
done
ls -l "$input" > "$output/listing.txt"
echo "copied $count instances from $input to $output"
