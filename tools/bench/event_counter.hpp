// EventCounter: counts perf events (system calls by tracepoint, uprobes on malloc, task-clock, context
// switches…) in one process during exactly one measured phase, by running Linux's `perf stat` attached to
// it. perf starts with its counters disabled and is switched on and off through its control pipe
// (--control), waiting for perf's acknowledgement each time, so the counts cover the phase and nothing
// else, for any daemon alike. What it answers: where a daemon's time per message goes (docs/
// performance.md, "Where the time goes"). Counting costs the measured process time (a uprobe traps on
// every call), so a run that counts is for counts, not for rates.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "afbus/fd.hpp"
#include "bench.hpp"

namespace afbus::bench {

class EventCounter {
public:
    // Starts `perf` (from PATH) attached to `pid`, counters off, and switches them on. Fails when perf is
    // missing, cannot attach, or does not know an event (perf's own message is in the error).
    static Result<std::unique_ptr<EventCounter>> start(pid_t pid, const std::vector<std::string>& events,
                                                       std::chrono::seconds timeout);
    ~EventCounter();
    EventCounter(const EventCounter&) = delete;
    EventCounter& operator=(const EventCounter&) = delete;

    // Switches the counters off, ends perf and returns each event's count during the phase (an event
    // perf could not count is missing from the map).
    Result<std::map<std::string, double>> stop();

private:
    EventCounter() = default;
    Result<void> command(const char* what);

    pid_t perf_pid_ = -1;
    Fd control_;      // we write "enable"/"disable"
    Fd acknowledge_;  // perf answers "ack"
    std::string output_path_;
    std::string directory_;
    std::chrono::seconds timeout_{0};
};

// Parses `perf stat -x,` output: "count,unit,event,…" lines; comments, empty lines and "<not counted>" /
// "<not supported>" rows are skipped. Exposed for its unit test.
std::map<std::string, double> parse_perf_stat_csv(const std::string& text);

}  // namespace afbus::bench
