// The replacement global operator new and delete behind FailingAllocations. Every form allocates with
// malloc and frees with free, so that a sanitizer's allocator sees matching pairs whichever form the
// program used. Not thread-safe on purpose: the code under test is single-threaded (the event loop).
#include "failing_allocations.hpp"

#include <dirent.h>

#include <csignal>
#include <cstdlib>
#include <new>

namespace {

struct State {
    bool counting = false;
    std::size_t fail_at = 0;
    std::size_t count = 0;
    bool failed = false;
};
State state;

// Whether this allocation is the one to fail.
bool fails_now() {
    if (!state.counting) return false;
    ++state.count;
    if (state.fail_at == 0 || state.count != state.fail_at) return false;
    state.failed = true;
    // For finding who asked, under a debugger: AFBUS_TRAP_AT_FAILING_ALLOCATION=N stops at failure N.
    if (const char* trap = std::getenv("AFBUS_TRAP_AT_FAILING_ALLOCATION"); trap && std::strtoull(trap, nullptr, 10) == state.fail_at)
        std::raise(SIGTRAP);
    return true;
}

void* allocate(std::size_t size, std::size_t alignment) {
    if (fails_now()) return nullptr;
    if (size == 0) size = 1;
    if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
    void* p = nullptr;
    return ::posix_memalign(&p, alignment, size) == 0 ? p : nullptr;
}

void* allocate_or_throw(std::size_t size, std::size_t alignment = alignof(std::max_align_t)) {
    if (void* p = allocate(size, alignment)) return p;
    throw std::bad_alloc();
}

}  // namespace

namespace afbus::test {

FailingAllocations::FailingAllocations(std::size_t fail_at) { state = State{true, fail_at, 0, false}; }
FailingAllocations::~FailingAllocations() { stop(); }
std::size_t FailingAllocations::count() const { return state.count; }
bool FailingAllocations::failed() const { return state.failed; }
void FailingAllocations::stop() { state.counting = false; }

FailingAllocations::Pause::Pause() : was_counting_(state.counting) { state.counting = false; }
FailingAllocations::Pause::~Pause() { state.counting = was_counting_; }

std::size_t open_fds() {
    std::size_t count = 0;
    if (DIR* dir = ::opendir("/proc/self/fd")) {
        while (::readdir(dir)) ++count;
        ::closedir(dir);
    }
    return count;
}

}  // namespace afbus::test

void* operator new(std::size_t size) { return allocate_or_throw(size); }
void* operator new[](std::size_t size) { return allocate_or_throw(size); }
void* operator new(std::size_t size, std::align_val_t a) { return allocate_or_throw(size, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t size, std::align_val_t a) { return allocate_or_throw(size, static_cast<std::size_t>(a)); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, alignof(std::max_align_t)); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return allocate(size, alignof(std::max_align_t)); }
void* operator new(std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(size, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
    return allocate(size, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
