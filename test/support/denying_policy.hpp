// A compiled busconfig policy for tests of a reload: everything allowed but calls on the interface
// org.x.Denied, as <allow user="*"/> <allow own="*"/> <allow send_destination="*"/>
// <allow receive_sender="*"/> <deny send_interface="org.x.Denied"/> in a default context.
#pragma once

#include <memory>

#include "policy_engine.hpp"

namespace afbus::test {

[[nodiscard]] std::shared_ptr<policy::PolicyEngine> denying_policy();

}  // namespace afbus::test
