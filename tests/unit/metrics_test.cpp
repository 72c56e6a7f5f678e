#include "metrics/process_metrics.hpp"
#include "metrics/registry.hpp"

#include "tests/support/process.hpp"

#include <gtest/gtest.h>

#include <clocale>

using namespace dcmstreams;

TEST(metrics, exposition_has_help_type_and_escaped_labels) {
  metrics::registry reg;
  auto& counter = reg.add_counter("test_things_total", "Things, counted.\nTwo lines.", {"kind"});
  counter.with({"a\"b\\c\nd"}).increment(2);
  auto& gauge = reg.add_gauge("test_level", "A level.");
  gauge.with({}).set(-1.5);
  auto text = reg.expose();
  EXPECT_NE(text.find("# HELP test_things_total Things, counted.\\nTwo lines.\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE test_things_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("test_things_total{kind=\"a\\\"b\\\\c\\nd\"} 2\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE test_level gauge\ntest_level -1.5\n"), std::string::npos) << text;
}

TEST(metrics, histogram_buckets_are_cumulative_with_inf) {
  metrics::registry reg;
  auto& h = reg.add_histogram("test_duration_seconds", "Durations.", {0.1, 1, 10}, {"stream"});
  for (double v : {0.05, 0.1, 0.5, 5.0, 50.0})
    h.with({"s"}).observe(v);
  auto text = reg.expose();
  EXPECT_NE(text.find("test_duration_seconds_bucket{stream=\"s\",le=\"0.1\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("test_duration_seconds_bucket{stream=\"s\",le=\"1\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("test_duration_seconds_bucket{stream=\"s\",le=\"10\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find("test_duration_seconds_bucket{stream=\"s\",le=\"+Inf\"} 5\n"),
            std::string::npos);
  EXPECT_NE(text.find("test_duration_seconds_count{stream=\"s\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("test_duration_seconds_sum{stream=\"s\"} 55.65\n"), std::string::npos);
}

TEST(metrics, names_are_validated_and_declared_once) {
  metrics::registry reg;
  EXPECT_THROW(reg.add_counter("1bad", "x"), std::invalid_argument);
  EXPECT_THROW(reg.add_counter("ok_total", "x", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(reg.add_histogram("h", "x", {1, 1}), std::invalid_argument);
  reg.add_gauge("once", "x");
  EXPECT_THROW(reg.add_gauge("once", "x"), std::invalid_argument);
  auto& c = reg.add_counter("c_total", "x", {"a"});
  EXPECT_THROW(c.with({"1", "2"}), std::invalid_argument);
  EXPECT_THROW(c.with({"1"}).increment(-1), std::invalid_argument);
}

TEST(metrics, numbers_ignore_the_locale) {
  std::setlocale(LC_ALL, "de_DE.UTF-8"); // may not exist; then this checks the C locale
  EXPECT_EQ(metrics::format_value(0.25), "0.25");
  EXPECT_EQ(metrics::format_value(1e21), "1e+21");
  EXPECT_EQ(metrics::format_value(1.0 / 0.0), "+Inf");
  std::setlocale(LC_ALL, "C");
}

TEST(metrics, promtool_accepts_the_exposition) {
  metrics::registry reg;
  reg.add_counter("dcmstreams_test_total", "Counted.", {"a"}).with({"x"}).increment();
  reg.add_histogram("dcmstreams_test_seconds", "Timed.", metrics::exponential_buckets(0.01, 2, 8))
      .with({})
      .observe(0.3);
  metrics::register_process_metrics(reg);
  fixtures::temp_dir dir;
  fixtures::write_file(dir / "metrics.txt", reg.expose());
  auto checked =
      fixtures::run({"sh", "-c", "promtool check metrics < " + (dir / "metrics.txt").string()});
  EXPECT_EQ(checked.exit_code, 0) << checked.output << reg.expose();
}

TEST(metrics, process_metrics_read_proc) {
  metrics::registry reg;
  metrics::register_process_metrics(reg);
  auto text = reg.expose();
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter"), std::string::npos);
  EXPECT_EQ(text.find("process_resident_memory_bytes 0\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("process_open_fds 0\n"), std::string::npos) << text;
  EXPECT_GT(metrics::peak_resident_bytes(), 0);
}
