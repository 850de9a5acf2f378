// FailingAllocations: makes one chosen allocation fail, for tests of what a component does when memory
// runs out part-way through its work. The program's global operator new is replaced (failing_allocations.cpp;
// link it into one test program only): while a FailingAllocations is alive, allocations are counted, and
// the one numbered `fail_at` throws std::bad_alloc (the nothrow forms return nullptr). Tests run the same
// step with fail_at = 1, 2, … until a run makes fewer allocations than that: every allocation of the step
// then failed once, in turn.
#pragma once

#include <cstddef>

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

}  // namespace afbus::test
