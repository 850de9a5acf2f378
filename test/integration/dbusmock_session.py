#!/usr/bin/python3
# python-dbusmock, unmodified, starting its private session bus with the `dbus-daemon` it finds in PATH
# (test_daemon_fork.cpp puts the daemon under test there): DBusTestCase.start_session_bus() runs
# `dbus-daemon --fork --print-address=1 --print-pid=1 --config-file=…` and reads its stdout to end of
# file, which returns only once the background bus holds none of it (issue 12). Then a mock object
# (spawn_server + AddMethod) and a template (notification_daemon) are called through that bus.
#
# Prints "bus-exe <path>" (the executable of the bus dbusmock started) before the tests run, so that the
# caller can check which daemon served them. Exits 77 when python3-dbusmock or python3-dbus is missing.
import os
import subprocess
import sys
import unittest

try:
    import dbus
    import dbusmock
except ImportError as e:
    print(f'missing module: {e}')
    sys.exit(77)


class DbusmockOnTheDaemonUnderTest(dbusmock.DBusTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_session_bus()
        print('bus-exe', os.readlink(f'/proc/{cls.session_bus_pid}/exe'), flush=True)
        cls.bus = cls.get_dbus(system_bus=False)

    def test_spawned_mock_answers_an_added_method(self):
        server = self.spawn_server('org.example.Mock', '/org/example/Mock', 'org.example.Mock',
                                   stdout=subprocess.PIPE)
        try:
            mock = dbus.Interface(self.bus.get_object('org.example.Mock', '/org/example/Mock'),
                                  dbusmock.MOCK_IFACE)
            mock.AddMethod('', 'Add', 'ii', 'i', 'ret = args[0] + args[1]')
            obj = self.bus.get_object('org.example.Mock', '/org/example/Mock')
            self.assertEqual(obj.Add(2, 40, dbus_interface='org.example.Mock'), 42)
            calls = mock.GetCalls()
            self.assertEqual([(str(c[1]), [int(a) for a in c[2]]) for c in calls], [('Add', [2, 40])])
        finally:
            server.stdout.close()
            server.terminate()
            server.wait()

    def test_template_serves_its_interface(self):
        server, _ = self.spawn_server_template('notification_daemon', {}, stdout=subprocess.PIPE)
        try:
            notify = dbus.Interface(self.bus.get_object('org.freedesktop.Notifications',
                                                        '/org/freedesktop/Notifications'),
                                    'org.freedesktop.Notifications')
            self.assertEqual(notify.Notify('test', 0, '', 'summary', 'body', [], {}, -1), 1)
            self.assertIn('body', [str(c) for c in notify.GetCapabilities()])
        finally:
            server.stdout.close()
            server.terminate()
            server.wait()


if __name__ == '__main__':
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
