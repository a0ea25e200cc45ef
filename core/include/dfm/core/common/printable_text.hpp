// Text fit to print: messages can carry bytes read from damaged files (a JSON
// parser's "last read: '...'" quotes them), and a terminal, a log collector or
// a JSON consumer of the output expects valid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace dfm {

// `text` with every byte that is not part of a valid UTF-8 sequence, and
// every control character but newline and tab, written as \xNN; valid UTF-8
// (ASCII included) is kept as it is.
std::string printable_text(std::string_view text);

}  // namespace dfm
