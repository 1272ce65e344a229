// The generated API library: the InfoService and its messages are compiled in and usable.
#include <gtest/gtest.h>

#include "google/protobuf/descriptor.h"
#include "longnet/v1/info.grpc.pb.h"
#include "longnet/v1/info.pb.h"

namespace {

TEST(InfoProto, ServiceIsRegisteredWithItsMethod) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("longnet.v1.InfoService");
  ASSERT_NE(service, nullptr);
  const google::protobuf::MethodDescriptor* method = service->FindMethodByName("GetInfo");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(method->input_type()->full_name(), "longnet.v1.GetInfoRequest");
  EXPECT_EQ(method->output_type()->full_name(), "longnet.v1.GetInfoResponse");
  EXPECT_STREQ(longnet::v1::InfoService::service_full_name(), "longnet.v1.InfoService");
}

TEST(InfoProto, ResponseRoundTripsThroughTheWireFormat) {
  longnet::v1::GetInfoResponse response;
  response.set_device("cpu");
  auto* model = response.mutable_model();
  model->set_type(longnet::v1::MODEL_TYPE_DECODER);
  auto* branch = model->add_branches();
  branch->set_segment_length(16384);
  branch->set_dilation(6);
  const std::string wire = response.SerializeAsString();
  longnet::v1::GetInfoResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  EXPECT_EQ(parsed.device(), "cpu");
  ASSERT_EQ(parsed.model().branches_size(), 1);
  EXPECT_EQ(parsed.model().branches(0).segment_length(), 16384);
  EXPECT_EQ(parsed.model().branches(0).dilation(), 6);
}

}  // namespace
