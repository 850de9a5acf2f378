// kernel/dbus/dbus_header.c compiled as C++, for fuzz builds whose C compiler is not clang (only CXX=clang++
// was given): the file is valid C and C++ alike, so the target still gets libFuzzer's coverage feedback.
#include "dbus_header.c"
