// The metadata answers without Nova (OpenStack's and EC2's layouts, as
// cloud-init reads them) and the instance id's signature (RFC 4231's
// HMAC-SHA256 vector).

#include "agent/metadata.h"

#include <gtest/gtest.h>

#include "model/json.h"

namespace canopy::agent {
namespace {

InstanceMetadata instance() {
  InstanceMetadata m;
  m.instance_id = "8d3a6a4c-3c1e-4f1b-9b1e-1b2c3d4e5f60";
  m.project_id = "demo";
  m.name = "vm1";
  m.hostname = "vm1";
  m.local_ipv4 = "10.0.0.5";
  m.public_keys = {{"mykey", "ssh-ed25519 AAAAC3Nza test@canopy"}};
  m.user_data = "#!/bin/sh\necho hello\n";
  return m;
}

std::string body(std::string_view path) {
  auto a = metadataAnswer(instance(), path);
  return a ? a->body : "<404>";
}

TEST(Metadata, OpenStackLayout) {
  EXPECT_NE(body("/openstack").find("latest"), std::string::npos);
  EXPECT_NE(body("/openstack/latest").find("meta_data.json"), std::string::npos);
  auto meta = model::parseJson(body("/openstack/latest/meta_data.json"));
  ASSERT_TRUE(meta);
  EXPECT_EQ((*meta)["uuid"], instance().instance_id);
  EXPECT_EQ((*meta)["hostname"], "vm1");
  EXPECT_EQ((*meta)["public_keys"]["mykey"], "ssh-ed25519 AAAAC3Nza test@canopy");
  EXPECT_EQ((*meta)["project_id"], "demo");
  EXPECT_EQ(body("/openstack/2012-08-10/user_data"), "#!/bin/sh\necho hello\n");
  EXPECT_EQ(body("/openstack/latest/vendor_data.json"), "{}");
  EXPECT_EQ(body("/openstack/1999-01-01/meta_data.json"), "<404>");
  EXPECT_EQ(body("/openstack/latest/secret"), "<404>");
  InstanceMetadata no_data = instance();
  no_data.user_data.reset();
  EXPECT_FALSE(metadataAnswer(no_data, "/openstack/latest/user_data"));
}

TEST(Metadata, Ec2Layout) {
  EXPECT_NE(body("/").find("2009-04-04"), std::string::npos);
  EXPECT_EQ(body("/latest/meta-data/instance-id"), instance().instance_id);
  EXPECT_EQ(body("/2009-04-04/meta-data/local-ipv4"), "10.0.0.5");
  EXPECT_EQ(body("/latest/meta-data/public-keys/"), "0=mykey");
  EXPECT_EQ(body("/latest/meta-data/public-keys/0/openssh-key"),
            "ssh-ed25519 AAAAC3Nza test@canopy");
  EXPECT_EQ(body("/latest/meta-data/placement/availability-zone"), "nova");
  EXPECT_EQ(body("/latest/user-data"), "#!/bin/sh\necho hello\n");
  std::string index = body("/latest/meta-data/");
  EXPECT_NE(index.find("instance-id"), std::string::npos);
  EXPECT_NE(index.find("public-keys/"), std::string::npos);
  EXPECT_EQ(body("/latest/meta-data/public-ipv4"), "<404>");
  EXPECT_EQ(body("/3000-01-01/meta-data/instance-id"), "<404>");
}

TEST(Metadata, InstanceSignatureIsHmacSha256) {
  EXPECT_EQ(instanceSignature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

}  // namespace
}  // namespace canopy::agent
