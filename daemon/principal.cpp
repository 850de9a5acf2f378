#include "principal.hpp"

#include <grp.h>
#include <pwd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include <vector>

namespace afbus::daemon {

policy::Principal principal_for(std::optional<uid_t> uid) {
    policy::Principal principal;
    if (!uid) return principal;
    principal.uid = static_cast<std::uint32_t>(*uid);
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwuid_r(*uid, &pw, buffer.data(), buffer.size(), &found) == 0 && found) {
        int count = 64;
        std::vector<gid_t> groups(static_cast<std::size_t>(count));
        if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
            groups.resize(static_cast<std::size_t>(count));  // count now holds the number needed
            getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count);
        }
        groups.resize(static_cast<std::size_t>(count));
        principal.groups.assign(groups.begin(), groups.end());
    }
    principal.at_console = sd_booted() > 0 && sd_uid_get_seats(*uid, 0, nullptr) > 0;
    return principal;
}

}  // namespace afbus::daemon
