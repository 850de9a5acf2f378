#include "table.hpp"

#include <algorithm>

namespace afbusctl {

std::size_t display_width(const std::string& text) {
    std::size_t width = 0;
    for (char c : text)
        if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
    return width;
}

std::string Table::render(bool legend) const {
    std::vector<std::size_t> widths(columns_.size(), 0);
    if (legend)
        for (std::size_t i = 0; i < columns_.size(); ++i) widths[i] = display_width(columns_[i].header);
    for (std::size_t i = 0; i < columns_.size() && i < minimum_widths_.size(); ++i)
        widths[i] = std::max(widths[i], minimum_widths_[i]);
    for (const auto& row : rows_)
        for (std::size_t i = 0; i < columns_.size() && i < row.size(); ++i)
            widths[i] = std::max(widths[i], display_width(row[i]));

    std::string out;
    const auto put_line = [&](const std::vector<std::string>& cells) {
        std::string line;
        for (std::size_t i = 0; i < columns_.size(); ++i) {
            const std::string& cell = i < cells.size() ? cells[i] : std::string();
            const std::size_t pad = widths[i] - std::min(widths[i], display_width(cell));
            const bool last = i + 1 == columns_.size();
            if (i != 0) line += ' ';
            if (columns_[i].align == Align::Right) line.append(pad, ' ');
            line += cell;
            if (columns_[i].align == Align::Left && !last) line.append(pad, ' ');
        }
        out += line;
        out += '\n';
    };
    if (legend) {
        std::vector<std::string> headers;
        for (const auto& c : columns_) headers.push_back(c.header);
        put_line(headers);
    }
    for (const auto& row : rows_) put_line(row);
    return out;
}

}  // namespace afbusctl
