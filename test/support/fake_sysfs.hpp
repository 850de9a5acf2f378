// FakeSysfs: a temporary directory standing in for /sys where libafbus looks up AF_BUS's family number
// (module/af_bus/parameters/family), so that tests choose what "the kernel" says. Removed when it goes.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace afbus::test {

class FakeSysfs {
public:
    FakeSysfs() {
        std::string templ = (std::filesystem::temp_directory_path() / "afbus-sysfs-XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        root_ = templ;
    }
    ~FakeSysfs() {
        std::error_code ignored;
        std::filesystem::permissions(param_dir(), std::filesystem::perms::owner_all, ignored);
        std::filesystem::remove_all(root_, ignored);
    }
    FakeSysfs(const FakeSysfs&) = delete;
    FakeSysfs& operator=(const FakeSysfs&) = delete;

    [[nodiscard]] const std::filesystem::path& root() const { return root_; }
    [[nodiscard]] std::filesystem::path param_dir() const { return root_ / "module" / "af_bus" / "parameters"; }
    // The module is "loaded" and its family parameter reads `contents`.
    void write_family(const std::string& contents) const {
        std::filesystem::create_directories(param_dir());
        std::ofstream(param_dir() / "family") << contents;
    }

private:
    std::filesystem::path root_;
};

}  // namespace afbus::test
