// kernel/dbus/dbus_match.c compiled as C++, for fuzz builds whose C compiler is not clang (only
// CXX=clang++ was given), as fuzz_dbus_header_as_cpp.cpp does for the header parser it calls.
#include "dbus_match.c"
