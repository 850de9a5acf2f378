#include "denying_policy.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy_compiler.hpp"

namespace afbus::test {

std::shared_ptr<policy::PolicyEngine> denying_policy() {
    using Attributes = std::vector<std::pair<std::string, std::string>>;
    policy::SourceContext context{policy::SourceContext::Kind::Default, "", {}};
    for (const Attributes& allowed :
         {Attributes{{"user", "*"}}, Attributes{{"own", "*"}}, Attributes{{"send_destination", "*"}},
          Attributes{{"receive_sender", "*"}}})
        context.rules.push_back(policy::SourceRule{true, allowed, "test.conf", 1});
    context.rules.push_back(
        policy::SourceRule{false, Attributes{{"send_interface", "org.x.Denied"}}, "test.conf", 2});
    const policy::NameResolver resolver{
        [](const std::string&) -> std::optional<uid_t> { return std::nullopt; },
        [](const std::string&) -> std::optional<gid_t> { return std::nullopt; }};
    auto compiled = policy::compile_policy({context}, resolver);
    EXPECT_TRUE(compiled);
    auto engine = policy::PolicyEngine::load(std::move(compiled->image));
    EXPECT_TRUE(engine);
    return std::make_shared<policy::PolicyEngine>(std::move(*engine));
}

}  // namespace afbus::test
