// DirectoryWatch: a change in a watched directory runs the callback once per batch, from the event
// loop; directories that do not exist are left out; watching the same directories again (a reload) is
// no change in itself; and reading the changes allocates nothing, so that
// a bus short of memory still sees them (what the callback then does, a reload, is whole or nothing:
// test_bus_out_of_memory's AReload).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "dir_watch.hpp"
#include "event_loop.hpp"
#include "support/failing_allocations.hpp"

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;
using test::FailingAllocations;

struct TemporaryDirectory {
    std::string path;
    TemporaryDirectory() {
        std::string pattern = (std::filesystem::temp_directory_path() / "afbus-dir-watch-XXXXXX").string();
        EXPECT_TRUE(::mkdtemp(pattern.data()));
        path = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// Turns of `loop` until `done`, for at most 2 s.
template <class Done>
void run_until(EventLoop& loop, Done&& done) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!done() && std::chrono::steady_clock::now() < deadline) ASSERT_TRUE(loop.run_once(100ms));
}

TEST(DirectoryWatch, AFileWrittenInAWatchedDirectoryIsOneChange) {
    TemporaryDirectory watched, other;
    EventLoop loop;
    int changes = 0;
    DirectoryWatch watch(loop, [&] { ++changes; });
    watch.set_directories({watched.path, watched.path + "/missing"});
    std::ofstream(other.path + "/ignored.conf") << "x";
    std::ofstream(watched.path + "/new.conf") << "<busconfig/>";
    run_until(loop, [&] { return changes > 0; });
    EXPECT_EQ(changes, 1) << "a file created, written and closed is one batch";
    // Nothing more comes by itself (the other directory is not watched).
    ASSERT_TRUE(loop.run_once(50ms));
    EXPECT_EQ(changes, 1);
}

TEST(DirectoryWatch, WatchingOtherDirectoriesForgetsTheFormer) {
    TemporaryDirectory first, second;
    EventLoop loop;
    int changes = 0;
    DirectoryWatch watch(loop, [&] { ++changes; });
    watch.set_directories({first.path});
    watch.set_directories({second.path});
    std::ofstream(first.path + "/a.conf") << "x";
    ASSERT_TRUE(loop.run_once(50ms));
    EXPECT_EQ(changes, 0);
    std::ofstream(second.path + "/b.conf") << "x";
    run_until(loop, [&] { return changes > 0; });
    EXPECT_EQ(changes, 1);
}

// What a reload does (the same directories set again, and one more): no change follows by itself. (Each
// reload used to remove every watch and make it again; the kernel reports a removed watch, IN_IGNORED,
// which was taken for a change: a reload after every reload, the bus busy for ever.)
TEST(DirectoryWatch, SettingTheDirectoriesAgainIsNoChange) {
    TemporaryDirectory first, second;
    EventLoop loop;
    int changes = 0;
    DirectoryWatch watch(loop, [&] { ++changes; });
    watch.set_directories({first.path});
    watch.set_directories({first.path, second.path});
    watch.set_directories({second.path, first.path});
    ASSERT_TRUE(loop.run_once(50ms));
    EXPECT_EQ(changes, 0);
    std::ofstream(first.path + "/a.conf") << "x";
    run_until(loop, [&] { return changes > 0; });
    EXPECT_EQ(changes, 1) << "the first directory is still watched";
}

// The read of the changes, and the loop's turn that makes it, ask for no memory at all.
TEST(DirectoryWatch, SeeingAChangeAllocatesNothing) {
    TemporaryDirectory watched;
    EventLoop loop;
    int changes = 0;
    DirectoryWatch watch(loop, [&] { ++changes; });
    watch.set_directories({watched.path});
    std::ofstream(watched.path + "/new.conf") << "<busconfig/>";
    FailingAllocations counting(0);
    for (int turn = 0; turn < 20 && changes == 0; ++turn) ASSERT_TRUE(loop.run_once(100ms));
    counting.stop();
    EXPECT_EQ(changes, 1);
    EXPECT_EQ(counting.count(), 0u) << "seeing a change allocated";
}

}  // namespace
}  // namespace afbus::daemon
