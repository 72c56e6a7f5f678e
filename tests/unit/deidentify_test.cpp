#include "pipeline/dicom/deidentify.hpp"
#include "pipeline/dicom/synth.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>

#include <gtest/gtest.h>

#include <map>
#include <set>

using namespace dcmstreams;
namespace fs = std::filesystem;

namespace {

struct found_element {
  char action;
  std::string value;
};

// Every element of a data set, recursively: tag -> values seen.
void collect(DcmItem& item, std::multimap<std::pair<Uint16, Uint16>, std::string>& out) {
  for (unsigned long i = 0; i < item.card(); ++i) {
    DcmElement* element = item.getElement(i);
    auto tag = element->getTag();
    OFString value;
    if (element->ident() != EVR_SQ)
      element->getOFStringArray(value);
    out.emplace(std::make_pair(tag.getGroup(), tag.getElement()), value.c_str());
    if (element->ident() == EVR_SQ) {
      auto* sequence = static_cast<DcmSequenceOfItems*>(element);
      for (unsigned long n = 0; n < sequence->card(); ++n)
        collect(*sequence->getItem(n), out);
    }
  }
}

} // namespace

TEST(deidentify, removes_every_profile_attribute_in_the_pydicom_test_files) {
  std::map<std::pair<Uint16, Uint16>, char> profile;
  for (auto& e : basic_profile())
    profile[{e.group, e.element}] = e.action;
  fixtures::temp_dir out;
  uid_mapper uids;
  std::size_t files = 0, attributes_seen = 0;
  std::map<std::string, std::string> first_mapping;
  for (auto& file : fixtures::files_under(fixtures::pydicom_test_files())) {
    if (file.extension() != ".dcm")
      continue;
    DcmFileFormat before;
    bool readable = false;
    try {
      readable = before.loadFile(file.c_str()).good();
    } catch (const std::exception&) {
    }
    if (!readable)
      continue;
    auto target = out / (std::to_string(files) + ".dcm");
    if (deidentify_file(file, target, uids))
      continue; // files DCMTK reads but cannot write back (broken VRs)
    ++files;
    std::multimap<std::pair<Uint16, Uint16>, std::string> original, result;
    collect(*before.getDataset(), original);
    DcmFileFormat after;
    ASSERT_TRUE(after.loadFile(target.c_str()).good()) << file;
    collect(*after.getDataset(), result);
    for (auto& [tag, value] : result) {
      EXPECT_FALSE(tag.first % 2 == 1) << file << ": private attribute left";
      auto action = profile.find(tag);
      if (action == profile.end())
        continue;
      ++attributes_seen;
      switch (action->second) {
      case 'X':
        ADD_FAILURE() << file << ": (" << std::hex << tag.first << "," << tag.second
                      << ") should be removed";
        break;
      case 'Z':
        EXPECT_TRUE(value.empty())
            << file << ": (" << std::hex << tag.first << "," << tag.second << ") should be empty";
        break;
      case 'D':
      case 'U':
        // The original value must be gone wherever it was.
        for (auto [it, end] = original.equal_range(tag); it != end; ++it) {
          if (!it->second.empty()) {
            EXPECT_NE(value, it->second) << file << ": (" << std::hex << tag.first << ","
                                         << tag.second << ") kept its value";
          }
        }
        break;
      }
    }
  }
  EXPECT_GT(files, 40u) << "most pydicom test files should be de-identified";
  EXPECT_GT(attributes_seen, 100u);
  // The same UID maps to the same new UID in every file of the job.
  EXPECT_EQ(uids.map("1.2.3"), uids.map("1.2.3"));
  EXPECT_NE(uids.map("1.2.3"), uids.map("1.2.4"));
}

TEST(deidentify, uids_are_mapped_consistently_across_files) {
  fixtures::temp_dir out;
  uid_mapper uids;
  auto pd = fixtures::pydicom_test_files();
  // The MR_small variants share their SOP Instance UID.
  ASSERT_FALSE(deidentify_file(pd / "MR_small.dcm", out / "a.dcm", uids));
  ASSERT_FALSE(deidentify_file(pd / "MR_small_implicit.dcm", out / "b.dcm", uids));
  EXPECT_EQ(fixtures::sop_instance_uid(out / "a.dcm"), fixtures::sop_instance_uid(out / "b.dcm"));
  EXPECT_NE(fixtures::sop_instance_uid(out / "a.dcm"),
            fixtures::sop_instance_uid(pd / "MR_small.dcm"));
  auto dump = fixtures::run({"dcmdump", (out / "a.dcm").string()});
  EXPECT_NE(dump.output.find("(0012,0062) CS [YES]"), std::string::npos) << dump.output;
}

TEST(deidentify, a_de_identified_synthetic_instance_passes_dciodvfy) {
  fixtures::temp_dir dir;
  synth_options options;
  options.out = dir / "in";
  options.series = 1;
  options.instances = 1;
  options.rows = options.cols = 32;
  auto written = synthesize(options);
  ASSERT_TRUE(written);
  uid_mapper uids;
  ASSERT_FALSE(deidentify_file(written->files[0], dir / "out.dcm", uids));
  auto checked = fixtures::run({"dciodvfy", (dir / "out.dcm").string()});
  EXPECT_EQ(checked.output.find("Error"), std::string::npos) << checked.output;
}
