#include "api/call_guard.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "api/status_map.h"

namespace longnet::server {
namespace {

TEST(CallGuard, RefusesWhileLoadingAndDraining) {
  ServingState state(ApiKeys::none(), nullptr);
  grpc::ServerContext context;
  {
    CallGuard guard(state, context, "GetInfo");
    EXPECT_FALSE(guard.admitted());
    EXPECT_EQ(guard.admission().error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(guard.admission().error_message(), "model loading");
    EXPECT_EQ(state.in_flight(), 0);
  }
  state.set_phase(ServingState::Phase::kDraining);
  CallGuard guard(state, context, "GetInfo");
  EXPECT_EQ(guard.admission().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(guard.admission().error_message(), "server draining");
  EXPECT_EQ(guard.finish(guard.admission()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST(CallGuard, CountsAdmittedCallsUntilTheyFinish) {
  ServingState state(ApiKeys::none(), nullptr);
  state.set_phase(ServingState::Phase::kServing);
  grpc::ServerContext context;
  {
    CallGuard guard(state, context, "Generate");
    ASSERT_TRUE(guard.admitted());
    EXPECT_EQ(state.in_flight(), 1);
    EXPECT_FALSE(state.wait_idle(std::chrono::milliseconds(1)));
    EXPECT_TRUE(guard.finish(grpc::Status::OK).ok());
    EXPECT_EQ(state.in_flight(), 0);
  }
  {
    CallGuard unfinished(state, context, "Generate");  // the destructor uncounts it too
    EXPECT_EQ(state.in_flight(), 1);
  }
  EXPECT_EQ(state.in_flight(), 0);
  EXPECT_TRUE(state.wait_idle(std::chrono::milliseconds(1)));
}

TEST(CallGuard, RequestIds) {
  ServingState state(ApiKeys::none(), nullptr);
  state.set_phase(ServingState::Phase::kServing);
  grpc::ServerContext context;
  CallGuard guard(state, context, "Tokenize");
  EXPECT_EQ(guard.request_id().rfind("req-", 0), 0u);
  EXPECT_EQ(guard.request_id().size(), 20u);
  EXPECT_TRUE(guard.adopt_request_id("").ok());
  EXPECT_EQ(guard.request_id().rfind("req-", 0), 0u);
  EXPECT_TRUE(guard.adopt_request_id("client-42").ok());
  EXPECT_EQ(guard.request_id(), "client-42");
  EXPECT_EQ(guard.adopt_request_id("bad\x01").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(make_request_id(), make_request_id());
}

TEST(CallGuard, ApiKeyRequiredWhenKeysAreOn) {
  const std::string path = testing::TempDir() + "/call_guard_keys.txt";
  std::ofstream(path) << "key-one\n";
  absl::StatusOr<ApiKeys> keys = ApiKeys::load(path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  ServingState state(*std::move(keys), nullptr);
  state.set_phase(ServingState::Phase::kServing);
  grpc::ServerContext context;  // no metadata
  CallGuard guard(state, context, "GetInfo");
  EXPECT_EQ(guard.admission().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  guard.finish(guard.admission());
  EXPECT_EQ(state.in_flight(), 0);
  std::remove(path.c_str());
}

TEST(CallGuard, NoDeadlineIsTheFarFuture) {
  grpc::ServerContext context;
  EXPECT_EQ(call_deadline(context), Clock::time_point::max());
}

TEST(StatusMap, CodesMapOneToOneAndKeepTheMessage) {
  EXPECT_TRUE(to_grpc(absl::OkStatus()).ok());
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::InvalidArgumentError("a"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::ResourceExhaustedError("b"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("c"), grpc::StatusCode::UNAVAILABLE},
      {absl::FailedPreconditionError("d"), grpc::StatusCode::FAILED_PRECONDITION},
      {absl::DeadlineExceededError("e"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::CancelledError("f"), grpc::StatusCode::CANCELLED},
      {absl::UnauthenticatedError("g"), grpc::StatusCode::UNAUTHENTICATED},
      {absl::InternalError("h"), grpc::StatusCode::INTERNAL},
  };
  for (const auto& [status, code] : cases) {
    const grpc::Status mapped = to_grpc(status);
    EXPECT_EQ(mapped.error_code(), code) << status;
    EXPECT_EQ(mapped.error_message(), std::string(status.message()));
  }
  EXPECT_EQ(grpc_code_name(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
}

}  // namespace
}  // namespace longnet::server
