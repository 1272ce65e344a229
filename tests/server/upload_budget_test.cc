#include "api/upload_budget.h"

#include <gtest/gtest.h>

namespace longnet::server {
namespace {

TEST(UploadBudget, SharesAreBoundedTogetherAndGivenBackOnDestruction) {
  UploadBudget budget(100);
  {
    UploadBudget::Share a(budget);
    UploadBudget::Share b(budget);
    EXPECT_TRUE(a.grow_to(60).ok());
    EXPECT_TRUE(a.grow_to(40).ok());  // shrinking keeps what is held
    const absl::Status refused = b.grow_to(41);
    EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_NE(refused.message().find("limit of 100 bytes"), std::string::npos) << refused;
    EXPECT_TRUE(b.grow_to(40).ok());
  }
  UploadBudget::Share c(budget);
  EXPECT_TRUE(c.grow_to(100).ok());  // a and b gave everything back
  EXPECT_FALSE(c.grow_to(101).ok());
}

}  // namespace
}  // namespace longnet::server
