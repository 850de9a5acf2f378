#include "principal.hpp"

#include <grp.h>
#include <pwd.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <algorithm>

namespace afbus::daemon {
namespace {

// As dbus-daemon: logind's seats, when logind is running (it keeps /run/systemd/seats/).
bool at_console(uid_t uid) {
    return ::access("/run/systemd/seats/", F_OK) == 0 && sd_uid_get_seats(uid, 0, nullptr) > 0;
}

}  // namespace

std::optional<PolicyIdentity> policy_identity(std::optional<uid_t> uid, const std::vector<gid_t>& kernel_groups) {
    PolicyIdentity identity;
    if (!uid) return identity;
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwuid_r(*uid, &pw, buffer.data(), buffer.size(), &found) != 0 || !found) return std::nullopt;
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));  // count now holds the number needed
        if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) return std::nullopt;
    }
    groups.resize(static_cast<std::size_t>(count));
    identity.account_groups.assign(groups.begin(), groups.end());

    identity.principal.uid = static_cast<std::uint32_t>(*uid);
    if (kernel_groups.empty()) identity.principal.groups = identity.account_groups;
    else identity.principal.groups.assign(kernel_groups.begin(), kernel_groups.end());
    std::sort(identity.principal.groups.begin(), identity.principal.groups.end());
    identity.principal.groups.erase(std::unique(identity.principal.groups.begin(), identity.principal.groups.end()),
                                    identity.principal.groups.end());
    identity.principal.at_console = at_console(*uid);
    return identity;
}

}  // namespace afbus::daemon
