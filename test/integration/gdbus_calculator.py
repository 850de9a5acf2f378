#!/usr/bin/python3
"""A GDBus service (GLib's Gio, through PyGObject) for test_typed_object.cpp: libafbus's typed proxy
calling an object that GDBus serves.

    gdbus_calculator.py ADDRESS

Serves org.example.GCalc at /org/example/GCalc on the bus at ADDRESS, owns the name org.example.GCalc,
and runs until Quit is called: Add(d, d) -> d (and emits Computed(s, d)), Divide(d, d) -> d
(org.example.GCalc.Error.DivisionByZero for a zero divisor), the read-write property Memory (d).
Exits 77 when PyGObject is not installed.
"""
import sys

try:
    import gi
    gi.require_version("Gio", "2.0")
    from gi.repository import Gio, GLib
except (ImportError, ValueError):
    print("PyGObject (python3-gi) is not installed", file=sys.stderr)
    sys.exit(77)

INTROSPECTION = """<node>
  <interface name="org.example.GCalc">
    <method name="Add">
      <arg name="a" type="d" direction="in"/><arg name="b" type="d" direction="in"/>
      <arg name="sum" type="d" direction="out"/>
    </method>
    <method name="Divide">
      <arg name="dividend" type="d" direction="in"/><arg name="divisor" type="d" direction="in"/>
      <arg name="quotient" type="d" direction="out"/>
    </method>
    <method name="Quit"/>
    <signal name="Computed"><arg name="expression" type="s"/><arg name="result" type="d"/></signal>
    <property name="Memory" type="d" access="readwrite"/>
  </interface>
</node>"""


def main():
    address = sys.argv[1]
    loop = GLib.MainLoop()
    flags = Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION
    connection = Gio.DBusConnection.new_for_address_sync(address, flags, None, None)
    memory = [0.0]

    def method_call(conn, sender, path, interface, method, parameters, invocation):
        args = parameters.unpack()
        if method == "Add":
            result = args[0] + args[1]
            conn.emit_signal(None, path, interface, "Computed",
                             GLib.Variant("(sd)", ("%g + %g" % args, result)))
            invocation.return_value(GLib.Variant("(d)", (result,)))
        elif method == "Divide":
            if args[1] == 0:
                invocation.return_dbus_error("org.example.GCalc.Error.DivisionByZero", "Cannot divide by zero")
            else:
                invocation.return_value(GLib.Variant("(d)", (args[0] / args[1],)))
        elif method == "Quit":
            invocation.return_value(None)
            loop.quit()

    def get_property(conn, sender, path, interface, name):
        return GLib.Variant("d", memory[0])

    def set_property(conn, sender, path, interface, name, value):
        memory[0] = value.unpack()
        return True

    node = Gio.DBusNodeInfo.new_for_xml(INTROSPECTION)
    connection.register_object("/org/example/GCalc", node.interfaces[0], method_call, get_property, set_property)
    # DBUS_NAME_FLAG_DO_NOT_QUEUE (4): the name is ours, or the test fails at once.
    connection.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                         GLib.Variant("(su)", ("org.example.GCalc", 4)), None, Gio.DBusCallFlags.NONE, -1, None)
    loop.run()
    connection.flush_sync(None)


if __name__ == "__main__":
    main()
