// Whether to draw with Unicode glyphs (tree's "├─", monitor's "‣") or ASCII, decided as systemd decides:
// a UTF-8 locale, or no locale at all (C/POSIX, which systemd treats as C.UTF-8).
#pragma once

namespace afbusctl {

// Call after setlocale(LC_ALL, "").
bool locale_is_utf8();

}  // namespace afbusctl
