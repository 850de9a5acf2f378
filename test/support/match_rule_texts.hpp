// The match-rule reference table: rule texts at the edges of dbus-daemon's grammar, valid and invalid.
// test/integration/test_match_rule_reference.cpp sends each to the bus daemon (AddMatch) and requires
// MatchRule::parse's verdict to be the daemon's; test/unit/test_dbus_match_differential.cpp evaluates
// every one that parses with the kernel's C evaluator and with MatchRule::matches.
#pragma once

namespace afbus::test {

inline constexpr const char* kReferenceMatchRules[] = {
    "", "type='signal'", "type=signal", "  member='Foo',type='signal'", "arg3='x',arg0='y'",
    "arg0='it'\\''s'", "arg0=it\\'s", "arg0='a\\b'", "arg0=a\\b", "arg0='a,b'", "arg2path='/a/'",
    "arg0namespace='org.example'", "arg0namespace='org'", "arg63='x'", "eavesdrop='true'", "eavesdrop='false'",
    "path_namespace='/org'", "path_namespace='/'", "destination=':1.4'", "destination='org.example.X'",
    "sender='org.freedesktop.DBus'", "sender=':1.0'", "type='method_call'", "type='method_return'", "type='error'",
    "type='signal", "type", "type='bogus'", "bogus='x'", "=x", "type ='signal'", "type='signal',type='signal'",
    "member='a',member='b'", "arg0='a',arg0='b'", "arg0='a',arg0path='/b'", "sender='no dots'",
    "interface='nodots'", "member='a.b'", "member='9a'", "path='a'", "path='/a/'", "path_namespace='/a/'",
    "path='/a',path_namespace='/a'", "destination='x'", "arg64='x'", "arg='x'", "arg1namespace='a.b'",
    "arg0junk='a'", "arg0namespace='a..b'", "arg0namespace=':1'", "eavesdrop='yes'", "type='signal' ,member='x'",
    "type='signal',", "type='signal',,member='x'", "arg0path='relative'", "arg0path=''", "arg0=''",
    "ty pe='signal'", "type\t='signal'", "type= 'signal'", "type='signal',=x,member='9'", "=", " = x",
    "member =x", "arg0 ='a'",
    "interface='org.example.I',member='M',path='/a/b',arg0='x',arg1path='/y/',arg0namespace='q'",
};

}  // namespace afbus::test
