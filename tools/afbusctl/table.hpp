// Column tables as busctl prints them (list, introspect): a header line unless --no-legend, columns
// separated by one blank and padded to their widest cell, numbers right-aligned, the last column not
// padded.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace afbusctl {

class Table {
public:
    enum class Align { Left, Right };
    struct Column {
        std::string header;
        Align align = Align::Left;
    };

    explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
    void add_row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
    // Makes `column` at least `width` wide, as if a row that is not printed had a cell that wide
    // (busctl's introspect sizes its columns over the interface it hides).
    void reserve_width(std::size_t column, std::size_t width) {
        if (minimum_widths_.size() <= column) minimum_widths_.resize(column + 1, 0);
        minimum_widths_[column] = std::max(minimum_widths_[column], width);
    }
    [[nodiscard]] bool empty() const { return rows_.empty(); }

    [[nodiscard]] std::string render(bool legend) const;

private:
    std::vector<Column> columns_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<std::size_t> minimum_widths_;
};

// Display width of UTF-8 text, counting each code point as one column (what the tables hold: names,
// signatures, escaped values).
std::size_t display_width(const std::string& text);

}  // namespace afbusctl
