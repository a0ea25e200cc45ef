// printable_text: what error lines do with bytes quoted from damaged files.
#include <gtest/gtest.h>

#include "dfm/core/common/printable_text.hpp"

namespace dfm {
namespace {

TEST(PrintableText, KeepsValidUtf8AndEscapesEverythingElse) {
  EXPECT_EQ(printable_text("plain ascii, tab\tand newline\n"), "plain ascii, tab\tand newline\n");
  EXPECT_EQ(printable_text("σ = 1 → 0, 🎥"), "σ = 1 → 0, 🎥");
  // nlohmann::json's "last read" quoting a damaged index.json (issue 22).
  EXPECT_EQ(printable_text("last read: '67\xcb'"), "last read: '67\\xcb'");
  EXPECT_EQ(printable_text(std::string("nul \0 bell \a del \x7f", 18)), "nul \\x00 bell \\x07 del \\x7f");
  EXPECT_EQ(printable_text("\xc0\xaf"), "\\xc0\\xaf");          // an overlong '/'
  EXPECT_EQ(printable_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate
  EXPECT_EQ(printable_text("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  EXPECT_EQ(printable_text("\xe2\x82"), "\\xe2\\x82");          // a sequence cut short
}

}  // namespace
}  // namespace dfm
