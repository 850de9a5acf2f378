// The fuzz targets' invariant check: a violated invariant aborts with its description, which libFuzzer
// reports as a crash and keeps the input that caused it.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace afbus::fuzz {

inline void check(bool condition, const char* what) {
    if (!condition) {
        std::fprintf(stderr, "invariant violated: %s\n", what);
        std::abort();
    }
}

}  // namespace afbus::fuzz
