#include "principal.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>

#include "systemd_integration.hpp"

namespace afbus::daemon {
namespace {

// As dbus-daemon: logind's seats, when logind is running (it keeps /run/systemd/seats/).
bool at_console(uid_t uid) {
    return systemd::uid_is_on_a_seat(uid);
}

}  // namespace

const std::optional<AccountCache::Account>& AccountCache::lookup(uid_t uid) {
    if (auto it = accounts_.find(uid); it != accounts_.end()) return it->second;
    std::optional<Account> account;
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) == 0 && found) {
        int count = 64;
        std::vector<gid_t> groups(static_cast<std::size_t>(count));
        if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) {
            groups.resize(static_cast<std::size_t>(count));  // count now holds the number needed
            if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) < 0) count = -1;
        }
        if (count >= 0) {
            groups.resize(static_cast<std::size_t>(count));
            account = Account{std::vector<std::uint32_t>(groups.begin(), groups.end())};
        }
    }
    // A uid without an account is not remembered: the account may be created before it tries again.
    if (!account) {
        static const std::optional<Account> kNone;
        return kNone;
    }
    return accounts_.emplace(uid, std::move(account)).first->second;
}

std::optional<PolicyIdentity> policy_identity(std::optional<uid_t> uid, const std::vector<gid_t>& kernel_groups,
                                              AccountCache& accounts, ConsoleCheck console) {
    PolicyIdentity identity;
    if (!uid) return identity;
    const auto& account = accounts.lookup(*uid);
    if (!account) return std::nullopt;
    identity.account_groups = account->groups;

    identity.principal.uid = static_cast<std::uint32_t>(*uid);
    if (kernel_groups.empty()) identity.principal.groups = identity.account_groups;
    else identity.principal.groups.assign(kernel_groups.begin(), kernel_groups.end());
    std::sort(identity.principal.groups.begin(), identity.principal.groups.end());
    identity.principal.groups.erase(std::unique(identity.principal.groups.begin(), identity.principal.groups.end()),
                                    identity.principal.groups.end());
    identity.principal.at_console = console == ConsoleCheck::Ask && at_console(*uid);
    return identity;
}

}  // namespace afbus::daemon
