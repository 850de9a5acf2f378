// parse_perf_stat_csv: the counts afbus-bench --count-events reads back from `perf stat -x,`.
#include "../../tools/bench/event_counter.hpp"

#include <gtest/gtest.h>

namespace afbus::bench {
namespace {

TEST(PerfStatCsv, CountsByEventName) {
    // As perf 6.1 writes it with -x, (value, unit, event, run time, share of it counted, …).
    const std::string text =
        "# started on Fri Dec  4 22:41:14 2026\n"
        "\n"
        "1234.56,msec,task-clock,1234560000,100.00,0.617,CPUs utilized\n"
        "38,,context-switches,1234560000,100.00,30.779,/sec\n"
        "20000,,raw_syscalls:sys_enter,1234560000,100.00,,\n"
        "7,,probe_libc:malloc,1234560000,100.00,,\n";
    const auto counts = parse_perf_stat_csv(text);
    ASSERT_EQ(counts.size(), 4u);
    EXPECT_DOUBLE_EQ(counts.at("task-clock"), 1234.56);
    EXPECT_DOUBLE_EQ(counts.at("context-switches"), 38);
    EXPECT_DOUBLE_EQ(counts.at("raw_syscalls:sys_enter"), 20000);
    EXPECT_DOUBLE_EQ(counts.at("probe_libc:malloc"), 7);
}

TEST(PerfStatCsv, EventsPerfCouldNotCountAreLeftOut) {
    const std::string text =
        "<not counted>,,context-switches,0,100.00,,\n"
        "<not supported>,,cycles,0,100.00,,\n"
        "garbage without commas\n"
        "5,,syscalls:sys_enter_recvmsg,100,100.00,,\n";
    const auto counts = parse_perf_stat_csv(text);
    ASSERT_EQ(counts.size(), 1u);
    EXPECT_DOUBLE_EQ(counts.at("syscalls:sys_enter_recvmsg"), 5);
}

}  // namespace
}  // namespace afbus::bench
