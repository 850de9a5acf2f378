#include "locale_glyphs.hpp"

#include <langinfo.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace afbusctl {

bool locale_is_utf8() {
    const char* codeset = ::nl_langinfo(CODESET);
    if (codeset != nullptr && std::strcmp(codeset, "UTF-8") == 0) return true;
    // The first of LC_ALL, LC_CTYPE, LANG that is set names the locale; none, "C" or "POSIX" is the
    // plain C locale.
    const char* name = nullptr;
    for (const char* variable : {"LC_ALL", "LC_CTYPE", "LANG"}) {
        const char* value = std::getenv(variable);
        if (value != nullptr && *value != '\0') {
            name = value;
            break;
        }
    }
    return name == nullptr || std::strcmp(name, "C") == 0 || std::strcmp(name, "POSIX") == 0;
}

}  // namespace afbusctl
