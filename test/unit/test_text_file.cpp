// read_text_file / write_text_file: the configuration and the pid file without iostreams.
#include "text_file.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace afbus::daemon {
namespace {

class TextFileTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/afbus-text-file-XXXXXX";
        ASSERT_TRUE(::mkdtemp(pattern));
        dir_ = pattern;
    }
    void TearDown() override {
        ::unlink((dir_ + "/file").c_str());
        ::rmdir(dir_.c_str());
    }
    std::string dir_;
};

TEST_F(TextFileTest, WhatIsWrittenIsReadBackWhole) {
    const std::string path = dir_ + "/file";
    // Larger than one read, with NUL bytes: configuration files are read as they are, expat judges them.
    std::string text(40000, 'x');
    text[100] = '\0';
    ASSERT_TRUE(write_text_file(path, text));
    auto read = read_text_file(path);
    ASSERT_TRUE(read);
    EXPECT_EQ(*read, text);

    ASSERT_TRUE(write_text_file(path, "4242\n"));  // replaces, as a pid file is rewritten
    EXPECT_EQ(*read_text_file(path), "4242\n");
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    const mode_t mask = ::umask(0);
    ::umask(mask);
    EXPECT_EQ(info.st_mode & 0777, 0644u & ~mask);
}

TEST_F(TextFileTest, FailuresAreTheErrno) {
    auto missing = read_text_file(dir_ + "/missing");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), ENOENT);
    auto directory = read_text_file(dir_);
    ASSERT_FALSE(directory);
    EXPECT_EQ(directory.error(), EISDIR);
    auto unwritable = write_text_file(dir_ + "/no/such/dir", "x");
    ASSERT_FALSE(unwritable);
    EXPECT_EQ(unwritable.error(), ENOENT);
}

}  // namespace
}  // namespace afbus::daemon
