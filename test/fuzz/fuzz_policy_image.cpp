// Loads arbitrary bytes as a policy image. Whatever load() accepts must be safe to evaluate: build chains
// for a few principals and ask every hook about a few messages. Nothing may crash, hang or read out of
// bounds (the sanitizers watch); decisions must be self-consistent.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "fuzz_check.hpp"
#include "policy_engine.hpp"

using afbus::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes(size);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>(data[i]);
    auto engine = afbus::policy::PolicyEngine::load(std::move(bytes));
    if (!engine) return 0;

    const std::vector<std::string> names = {"org.example.Service", "org.example"};
    const afbus::policy::Party party{":1.7", names};
    for (const afbus::policy::Principal& principal :
         {afbus::policy::Principal{}, afbus::policy::Principal{0, {0}, true}, afbus::policy::Principal{1000, {50, 100}, false}}) {
        auto chains = engine->chains_for(principal);
        for (std::uint8_t type = 1; type <= 4; ++type) {
            afbus::policy::MessageFacts m;
            m.type = type;
            m.path = "/org/example";
            m.interface = type == 1 || type == 4 ? "org.example.I" : "";
            m.member = type == 1 || type == 4 ? "M" : "";
            m.error_name = type == 3 ? "org.example.Error" : "";
            m.destination = type == 4 ? "" : "org.example.Service";
            m.sender = ":1.9";
            m.is_reply = type == 2 || type == 3;
            m.requested_reply = true;
            m.fds = type;
            for (const afbus::policy::Party* other : {&party, static_cast<const afbus::policy::Party*>(nullptr)}) {
                const auto send = chains->check_send(m, other);
                check(send.rule != nullptr || send.verdict == afbus::policy::Verdict::Reject, "no rule, yet not denied");
                check(send.rule == nullptr || chains->count_matching(afbus::policy::Hook::Send, m, other) > 0,
                      "a deciding rule that does not match");
                (void)chains->check_receive(m, other, false);
                (void)chains->check_receive(m, other, true);
            }
        }
        (void)chains->can_own("org.example.Service");
        (void)chains->can_own("a");
    }
    const std::uint32_t groups[] = {0, 50};
    (void)engine->allows_connect(1000, groups, 0);
    return 0;
}
