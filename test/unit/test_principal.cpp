// Who a connection is for policy (daemon/principal): the account's groups from NSS, the kernel's
// groups for <policy group=…>, and the cache that spares NSS a lookup per connection.
#include "principal.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace afbus::daemon {
namespace {

// No account has this uid on a test machine (it is just below (uid_t)-1, which means "none").
constexpr uid_t kUnknownUid = 4294967290u;

bool contains(const std::vector<std::uint32_t>& groups, std::uint32_t gid) {
    return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

TEST(PolicyIdentity, AnAnonymousConnectionHasAnEmptyIdentity) {
    AccountCache accounts;
    auto identity = policy_identity(std::nullopt, {}, accounts, ConsoleCheck::Ask);
    ASSERT_TRUE(identity);
    EXPECT_TRUE(identity->account_groups.empty());
    EXPECT_TRUE(identity->principal.groups.empty());
}

TEST(PolicyIdentity, RootHasItsAccountGroupsUnlessTheKernelReportsOthers) {
    AccountCache accounts;
    auto identity = policy_identity(0, {}, accounts, ConsoleCheck::Ask);
    ASSERT_TRUE(identity);
    EXPECT_EQ(identity->principal.uid, 0u);
    EXPECT_TRUE(contains(identity->account_groups, 0));
    EXPECT_EQ(identity->principal.groups, identity->account_groups);

    // SO_PEERGROUPS decides the group contexts; the account's groups still decide who may connect.
    identity = policy_identity(0, {4242, 17, 4242}, accounts, ConsoleCheck::Ask);
    ASSERT_TRUE(identity);
    EXPECT_EQ(identity->principal.groups, (std::vector<std::uint32_t>{17, 4242}));
    EXPECT_TRUE(contains(identity->account_groups, 0));
}

TEST(PolicyIdentity, AUidWithoutAnAccountHasNoIdentity) {
    AccountCache accounts;
    EXPECT_FALSE(policy_identity(kUnknownUid, {}, accounts, ConsoleCheck::Ask));
    EXPECT_FALSE(accounts.lookup(kUnknownUid));
}

TEST(AccountCache, RemembersAnAccountUntilFlushed) {
    AccountCache accounts;
    const auto& first = accounts.lookup(0);
    ASSERT_TRUE(first);
    // The same entry, not a second NSS lookup.
    EXPECT_EQ(&accounts.lookup(0), &first);
    const std::vector<std::uint32_t> groups = first->groups;
    accounts.flush();
    const auto& again = accounts.lookup(0);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->groups, groups);
}

}  // namespace
}  // namespace afbus::daemon
