// Who a connection is for policy, worked out as dbus-daemon 1.14 does: <policy group="…"> contexts use the
// groups the kernel reports for the socket (SO_PEERGROUPS), or the account's groups where it reports none
// (TCP); who may connect is decided with the account's groups (NSS); at_console comes from
// systemd-logind's seats.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "policy_engine.hpp"

namespace afbus::daemon {

struct PolicyIdentity {
    policy::Principal principal;
    std::vector<std::uint32_t> account_groups;  // from NSS, for the CONNECT rules
};

// The user database as the bus sees it: each uid is looked up in NSS once (its account and groups) and
// remembered until flush(), which a configuration reload calls, as dbus-daemon caches and flushes its
// user database. Connecting then costs no passwd/group file reads after the first connection of a uid.
class AccountCache {
public:
    struct Account {
        std::vector<std::uint32_t> groups;  // the account's groups (NSS), primary group included
    };
    // nullopt when `uid` has no account (not remembered: it may get one).
    const std::optional<Account>& lookup(uid_t uid);
    void flush() { accounts_.clear(); }

private:
    std::unordered_map<uid_t, std::optional<Account>> accounts_;
};

// Whether to ask the seat manager if the user is at the console: only a policy with at_console
// contexts needs to know (policy::PolicyEngine::depends_on_console), and asking costs file lookups at
// every connect.
enum class ConsoleCheck : bool { Skip, Ask };

// nullopt when `uid` has no user account: dbus-daemon cannot look up its groups and refuses it.
// An anonymous connection (no uid) gets an empty identity.
std::optional<PolicyIdentity> policy_identity(std::optional<uid_t> uid, const std::vector<gid_t>& kernel_groups,
                                              AccountCache& accounts, ConsoleCheck console);

}  // namespace afbus::daemon
