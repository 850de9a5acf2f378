// kernel/dbus/dbus_policy.c compiled as C++, for fuzz builds whose C compiler is not clang (only
// CXX=clang++ was given), as fuzz_dbus_match_as_cpp.cpp does for the match-record evaluator.
#include "dbus_policy.c"
