#include "pipeline/dicom/deidentify.hpp"
#include "pipeline/dicom/synth.hpp"
#include "pipeline/foundation/secret.hpp"

#include "tests/support/node.hpp"
#include "tests/support/process.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <gtest/gtest.h>

#include <ctime>
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
  pseudonymizer uids{"a node secret of the tests"};
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
      case 'P':
        // Emptied where the VR is binary (UN in some pydicom files).
        EXPECT_TRUE(value.rfind("ANON-", 0) == 0 || value.empty())
            << file << ": (" << std::hex << tag.first << "," << tag.second << ") is " << value;
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
  EXPECT_EQ(uids.uid("1.2.3"), uids.uid("1.2.3"));
  EXPECT_NE(uids.uid("1.2.3"), uids.uid("1.2.4"));
}

TEST(deidentify, uids_are_mapped_consistently_across_files) {
  fixtures::temp_dir out;
  pseudonymizer uids{"a node secret of the tests"};
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

namespace {

/// De-identifies one synthetic CT instance and runs dciodvfy on the result.
void expect_valid_after_deidentification(const deidentify_options& options) {
  fixtures::temp_dir dir;
  synth_options synth;
  synth.out = dir / "in";
  synth.series = 1;
  synth.instances = 1;
  synth.rows = synth.cols = 32;
  auto written = synthesize(synth);
  ASSERT_TRUE(written);
  pseudonymizer pseudonyms{"a node secret of the tests", options};
  ASSERT_FALSE(deidentify_file(written->files[0], dir / "out.dcm", pseudonyms));
  auto checked = fixtures::run({"dciodvfy", (dir / "out.dcm").string()});
  EXPECT_EQ(checked.output.find("Error"), std::string::npos) << checked.output;
}

} // namespace

TEST(deidentify, a_de_identified_synthetic_instance_passes_dciodvfy) {
  expect_valid_after_deidentification({});
}

namespace {

/// A data set about one patient, with dates the profile removes.
DcmDataset patient_dataset(const std::string& id, const std::string& name) {
  DcmDataset data;
  data.putAndInsertString(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  data.putAndInsertString(DCM_SOPInstanceUID, "1.2.3.4.5.6.7");
  data.putAndInsertString(DCM_StudyInstanceUID, "1.2.3.4.5");
  data.putAndInsertString(DCM_PatientID, id.c_str());
  data.putAndInsertString(DCM_PatientName, name.c_str());
  data.putAndInsertString(DCM_PatientBirthDate, "19800229");
  data.putAndInsertString(DCM_StudyDate, "20240301");
  data.putAndInsertString(DCM_StudyTime, "123000");
  data.putAndInsertString(DCM_AcquisitionDateTime, "20240301123000.5");
  return data;
}

std::string value_of(DcmItem& data, const DcmTagKey& tag) {
  OFString value;
  data.findAndGetOFStringArray(tag, value);
  return value.c_str();
}

long day_number(const std::string& date) {
  std::tm t{};
  t.tm_year = std::stoi(date.substr(0, 4)) - 1900;
  t.tm_mon = std::stoi(date.substr(4, 2)) - 1;
  t.tm_mday = std::stoi(date.substr(6, 2));
  return static_cast<long>(timegm(&t) / 86400);
}

} // namespace

TEST(pseudonyms, the_same_patient_and_uids_get_the_same_pseudonyms_in_every_job_under_one_key) {
  auto first = patient_dataset("PAT-1", "Doe^Jane");
  auto again = patient_dataset("PAT-1", "Doe^Jane");
  auto other_key = patient_dataset("PAT-1", "Doe^Jane");
  // Separate objects stand for separate jobs (and restarts): only the key is shared.
  pseudonymizer job1{"the node's secret, 64 hex digits"}, job2{"the node's secret, 64 hex digits"};
  pseudonymizer elsewhere{"another node's secret, not ours"};
  deidentify(first, job1);
  deidentify(again, job2);
  deidentify(other_key, elsewhere);
  for (auto& tag : {DCM_PatientID, DCM_PatientName, DCM_StudyInstanceUID, DCM_SOPInstanceUID}) {
    EXPECT_EQ(value_of(first, tag), value_of(again, tag)) << tag.toString();
    EXPECT_NE(value_of(first, tag), value_of(other_key, tag)) << tag.toString();
  }
  auto id = value_of(first, DCM_PatientID);
  EXPECT_EQ(id.rfind("ANON-", 0), 0u) << id;
  EXPECT_EQ(id.size(), 17u) << id;
  EXPECT_EQ(value_of(first, DCM_PatientName), id) << "name and ID agree";
  auto uid = value_of(first, DCM_StudyInstanceUID);
  EXPECT_EQ(uid.rfind("2.25.", 0), 0u) << uid;
  EXPECT_LE(uid.size(), 64u);
  EXPECT_EQ(uid.find_first_not_of("0123456789.", 0), std::string::npos) << uid;
  EXPECT_TRUE(value_of(first, DCM_StudyDate).empty()) << "dates go without the option";
  EXPECT_EQ(value_of(first, DCM_LongitudinalTemporalInformationModified), "REMOVED");
}

TEST(pseudonyms, patients_without_an_id_are_told_apart_by_name_and_birth_date) {
  pseudonymizer pseudonyms{"the node's secret, 64 hex digits"};
  auto jane = patient_dataset("", "Doe^Jane");
  auto john = patient_dataset("", "Doe^John");
  auto jane_with_id = patient_dataset("PAT-1", "Doe^Jane");
  deidentify(jane, pseudonyms);
  deidentify(john, pseudonyms);
  deidentify(jane_with_id, pseudonyms);
  EXPECT_NE(value_of(jane, DCM_PatientID), value_of(john, DCM_PatientID));
  EXPECT_FALSE(value_of(jane, DCM_PatientID).empty());
  EXPECT_NE(value_of(jane, DCM_PatientID), value_of(jane_with_id, DCM_PatientID));
}

TEST(pseudonyms, dates_move_back_by_the_patients_own_days_with_the_option_times_stay) {
  pseudonymizer pseudonyms{"the node's secret, 64 hex digits", deidentify_options{true}};
  auto first = patient_dataset("PAT-1", "Doe^Jane");
  auto second = patient_dataset("PAT-1", "Doe^Jane");
  second.putAndInsertString(DCM_StudyDate, "20240315");
  auto other = patient_dataset("PAT-2", "Roe^Rick");
  deidentify(first, pseudonyms);
  deidentify(second, pseudonyms);
  deidentify(other, pseudonyms);
  auto study = value_of(first, DCM_StudyDate);
  ASSERT_EQ(study.size(), 8u) << study;
  long shift = day_number("20240301") - day_number(study);
  EXPECT_GE(shift, 1);
  EXPECT_LE(shift, 365);
  // One patient's dates move together: intervals stay (a leap day too).
  EXPECT_EQ(day_number("19800229") - day_number(value_of(first, DCM_PatientBirthDate)), shift);
  EXPECT_EQ(day_number("20240315") - day_number(value_of(second, DCM_StudyDate)), shift);
  auto acquired = value_of(first, DCM_AcquisitionDateTime);
  EXPECT_EQ(acquired.substr(0, 8), study);
  EXPECT_EQ(acquired.substr(8), "123000.5") << "the time of day stays";
  EXPECT_NE(day_number("20240301") - day_number(value_of(other, DCM_StudyDate)), shift)
      << "another patient has days of their own (a 1 in 365 chance to fail by design: keys fixed)";
  EXPECT_EQ(value_of(first, DCM_LongitudinalTemporalInformationModified), "MODIFIED");
  DcmItem* code = nullptr;
  ASSERT_TRUE(first.findAndGetSequenceItem(DCM_DeidentificationMethodCodeSequence, code, 1).good());
  EXPECT_EQ(value_of(*code, DCM_CodeValue), "113107");
}

TEST(pseudonyms, a_shifted_de_identified_instance_passes_dciodvfy) {
  expect_valid_after_deidentification(deidentify_options{true});
}

TEST(secret, is_made_once_readable_by_the_node_only_and_the_same_ever_after) {
  fixtures::temp_dir dir;
  auto file = dir / "data" / "deidentify.key";
  auto made = load_secret(file, true);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->size(), 64u);
  EXPECT_EQ(made->find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(*load_secret(file, true), *made);
  EXPECT_NE(*load_secret(dir / "other.key", true), *made);
  fixtures::write_file(dir / "short.key", "abc\n");
  auto short_one = load_secret(dir / "short.key", false);
  ASSERT_FALSE(short_one);
  EXPECT_NE(short_one.error().message.find("too short"), std::string::npos);
  auto missing = load_secret(dir / "missing.key", false);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("missing.key"), std::string::npos)
      << missing.error().message;
}
