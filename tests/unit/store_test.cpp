#include "pipeline/foundation/allowed_callers.hpp"
#include "pipeline/jobs/ingest.hpp"
#include "pipeline/jobs/store.hpp"

#include <gtest/gtest.h>

using namespace dcmstreams;

TEST(store, valid_uids_only) {
  EXPECT_TRUE(valid_uid("1.2.840.10008.5.1.4.1.1.2"));
  EXPECT_TRUE(valid_uid("2.25.1"));
  EXPECT_FALSE(valid_uid(""));
  EXPECT_FALSE(valid_uid("1..2"));
  EXPECT_FALSE(valid_uid(".1.2"));
  EXPECT_FALSE(valid_uid("1.2."));
  EXPECT_FALSE(valid_uid("../../etc"));
  EXPECT_FALSE(valid_uid("1.2/3"));
  EXPECT_FALSE(valid_uid(std::string(65, '1')));
}

TEST(store, ae_titles_become_safe_folder_names_and_back) {
  for (std::string title : {"SMOOTH", "CT_1-A", "A B", "../x", "..", "a/b%c", "\xe9"}) {
    auto name = folder_name_for_ae(title);
    EXPECT_EQ(name.find('/'), std::string::npos) << title;
    EXPECT_NE(name, "..");
    EXPECT_NE(name, ".");
    EXPECT_EQ(ae_from_folder_name(name), title);
  }
  EXPECT_EQ(folder_name_for_ae("SMOOTH"), "SMOOTH");
  EXPECT_EQ(folder_name_for_ae("A B"), "A%20B");
  EXPECT_FALSE(ae_from_folder_name("A%2"));
  EXPECT_FALSE(ae_from_folder_name("A%zz"));
}

TEST(store, layout_builds_the_documented_paths) {
  store_layout layout{"/srv/data"};
  EXPECT_EQ(layout.incoming_instance("CT 1", "MY@SCU", "10.0.0.7", "1.2.3", "1.2.3.4"),
            "/srv/data/incoming/CT%201/MY%40SCU@10.0.0.7/1.2.3/1.2.3.4.dcm");
  EXPECT_EQ(sender_folder_name("A", "::1"), "A@::1");
  EXPECT_EQ(sender_folder_name("", "../x"), "@..%2Fx");
  EXPECT_EQ(layout.stored_instance("1.2.3", "1.2.3.4"), "/srv/data/store/1.2.3/1.2.3.4.dcm");
  EXPECT_EQ(layout.job_dir(42), "/srv/data/jobs/42");
  EXPECT_EQ(layout.receive_dir(), "/srv/data/incoming/.tmp");
  EXPECT_EQ(layout.database_file(), "/srv/data/dcmstreams.db");
}

TEST(allowed_callers, empty_list_allows_everyone) {
  EXPECT_TRUE(caller_allowed({}, "ANY", "10.1.2.3"));
}

TEST(allowed_callers, titles_addresses_networks_and_both) {
  std::vector<std::string> allowed{"CT1", "@192.168.1.7", "@10.0.0.0/8", "MR1@172.16.0.5"};
  EXPECT_TRUE(caller_allowed(allowed, "CT1", "1.1.1.1"));
  EXPECT_TRUE(caller_allowed(allowed, "ANY", "192.168.1.7"));
  EXPECT_FALSE(caller_allowed(allowed, "ANY", "192.168.1.8"));
  EXPECT_TRUE(caller_allowed(allowed, "ANY", "10.200.3.4"));
  EXPECT_FALSE(caller_allowed(allowed, "ANY", "11.0.0.1"));
  EXPECT_TRUE(caller_allowed(allowed, "MR1", "172.16.0.5"));
  EXPECT_FALSE(caller_allowed(allowed, "MR1", "172.16.0.6"));
  EXPECT_FALSE(caller_allowed(allowed, "MR2", "172.16.0.5"));
  EXPECT_TRUE(caller_allowed({"@0.0.0.0/0"}, "X", "8.8.8.8"));
}

TEST(allowed_callers, bad_entries_are_named) {
  EXPECT_FALSE(check_allowed_callers({"CT1", "@1.2.3.4/24", "A@1.2.3.4"}));
  EXPECT_TRUE(check_allowed_callers({"@1.2.3"}));
  EXPECT_TRUE(check_allowed_callers({"@1.2.3.4/40"}));
  EXPECT_TRUE(check_allowed_callers({""}));
}
