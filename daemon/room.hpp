// Room before change: the bus takes the memory a change needs before it changes anything, so that running
// out of memory part-way leaves every table as it was (issue 17: a failed allocation costs the message that
// needed it, never the bus's consistency). A vector with room for one more element takes it without
// allocating.
#pragma once

#include <cstddef>

namespace afbus::daemon {

// Makes room in `v` for `more` elements beyond its size, growing geometrically (reserve() alone grows to
// the exact size asked, which would reallocate at every call). May throw std::bad_alloc; changes nothing
// else.
template <class Vector>
void make_room(Vector& v, std::size_t more = 1) {
    const std::size_t needed = v.size() + more;
    if (needed <= v.capacity()) return;
    v.reserve(needed > 2 * v.capacity() ? needed : 2 * v.capacity() + 4);
}

}  // namespace afbus::daemon
