// FailingAllocations: makes one chosen allocation fail, for tests of what a component does when memory
// runs out part-way through its work. The program's global operator new is replaced (failing_allocations.cpp;
// link it into one test program only): while a FailingAllocations is alive, allocations are counted, and
// the one numbered `fail_at` throws std::bad_alloc (the nothrow forms return nullptr). Tests run the same
// step with fail_at = 1, 2, … until a run makes fewer allocations than that: every allocation of the step
// then failed once, in turn.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <string>

namespace afbus::test {

class FailingAllocations {
public:
    // fail_at: the 1-based number of the allocation that fails; 0: none fails, they are only counted.
    explicit FailingAllocations(std::size_t fail_at);
    ~FailingAllocations();
    FailingAllocations(const FailingAllocations&) = delete;
    FailingAllocations& operator=(const FailingAllocations&) = delete;

    // Allocations asked for since construction (the failed one included).
    [[nodiscard]] std::size_t count() const;
    // Whether the allocation numbered fail_at was reached (and failed).
    [[nodiscard]] bool failed() const;
    // Stops counting and failing before the destructor: what the test does next allocates normally.
    void stop();

    // While one is alive, allocations are neither counted nor failed: for a test's own bookkeeping in
    // the middle of the code under test (a fake's records).
    class Pause {
    public:
        Pause();
        ~Pause();
        Pause(const Pause&) = delete;
        Pause& operator=(const Pause&) = delete;

    private:
        bool was_counting_;
    };
};

// What one run of a step with a failing allocation reached: FailingAllocations::failed() and count().
struct FailingRun {
    bool failed = false;
    std::size_t made = 0;
};

// What run_failing() saw of one step.
struct FailingStep {
    bool escaped = false;  // std::bad_alloc came out of it
    bool failed = false;   // the allocation numbered fail_at was reached
    std::size_t made = 0;  // allocations it asked for
};

// Runs `step` with allocation number `fail_at` failing (0: none fails, they are counted).
template <class Step>
FailingStep run_failing(std::size_t fail_at, Step&& step) {
    FailingStep outcome;
    FailingAllocations failing(fail_at);
    try {
        step();
    } catch (const std::bad_alloc&) {
        outcome.escaped = true;
    }
    failing.stop();
    outcome.failed = failing.failed();
    outcome.made = failing.count();
    return outcome;
}

// Runs `run(fail_at)` for fail_at = 1, 2, … (each run on a fresh world: the step with allocation fail_at
// failing, then the test's checks) until a run's step makes fewer allocations than fail_at, or a check
// fails. Returns how many allocations the step makes (printed), or the fail_at whose run failed a check.
template <class Run>
std::size_t fail_each_allocation_in_turn(Run&& run) {
    for (std::size_t fail_at = 1;; ++fail_at) {
        SCOPED_TRACE("allocation " + std::to_string(fail_at) + " fails");
        const FailingRun outcome = run(fail_at);
        if (testing::Test::HasFailure()) return fail_at;
        if (!outcome.failed) {
            std::printf("%s: %zu allocations, each failed once in turn\n",
                        testing::UnitTest::GetInstance()->current_test_info()->name(), outcome.made);
            return outcome.made;
        }
    }
}

// How many fds the process has open (/proc/self/fd): what a step under failing allocations must not leak.
std::size_t open_fds();

}  // namespace afbus::test
