# dcmstreams_library(<target> <folder> SOURCES ... [PUBLIC ...] [PRIVATE ...])
#
# One static library per folder. Headers are included by their folder from the
# repository root ("pipeline/jobs/job.hpp"), but a library sees only its own
# headers and those of the libraries it links: each library's include
# directory is a folder of its own in the build tree that holds one link, to
# its source folder. An include that goes the wrong way fails to compile,
# not only to link.
function(dcmstreams_library target folder)
  cmake_parse_arguments(arg "" "" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  add_library(${target} STATIC ${arg_SOURCES})
  set(root "${CMAKE_BINARY_DIR}/include/${target}")
  get_filename_component(parent "${root}/${folder}" DIRECTORY)
  file(MAKE_DIRECTORY "${parent}")
  file(CREATE_LINK "${CMAKE_SOURCE_DIR}/${folder}" "${root}/${folder}" SYMBOLIC)
  target_include_directories(${target} PUBLIC "${root}")
  target_link_libraries(${target} PUBLIC ${arg_PUBLIC} PRIVATE ${arg_PRIVATE})
endfunction()
