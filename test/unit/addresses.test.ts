// Which addresses are public and which host names share a registrable domain: the tables behind
// the upstream policy (issue 18 items 5 and 6), every form the second review tried included.
import { describe, expect, test } from "bun:test";
import { credentialsMayGoTo, isInternalAddress, normalizeAddress, registrableDomain } from "../../src/upstream/guard.ts";

describe("only globally routable unicast is public", () => {
  test.each([
    // IPv4: loopback, unspecified, private, link-local, CGNAT, IETF protocol assignments, TEST-NETs, benchmarking,
    // multicast, reserved, broadcast, 0/8, 6to4 relay, AS112, AMT.
    "127.0.0.1", "127.0.10.5", "127.255.255.254", "0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255", "192.0.0.1", "192.0.0.8", "192.0.0.170", "192.0.2.1",
    "198.51.100.7", "203.0.113.9", "198.18.0.1", "198.19.255.255", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "192.88.99.1", "192.175.48.1", "192.52.193.1",
    // IPv6: loopback, unspecified, unique-local, link-local, site-local, multicast, mapped, compatible, NAT64, 6to4, Teredo,
    // documentation, discard, benchmarking, ORCHID, segment routing, 3fff::/20, anything outside 2000::/3.
    "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "fe80::1%eth0", "febf::1", "fec0::1", "feff::1", "ff02::1", "ff0e::1",
    "::ffff:127.0.0.60", "::ffff:7f00:3c", "[::ffff:127.0.0.60]", "::ffff:8.8.8.8", "::7f00:1", "::127.0.0.1", "::a00:1",
    "64:ff9b::7f00:1", "64:ff9b::808:808", "64:ff9b:1::1", "2002::1", "2002:7f00:1::1", "2002:c0a8:101::1", "2001::1",
    "2001:0:4136:e378::1", "2001:db8::1", "100::1", "2001:2::1", "2001:10::1", "2001:20::1", "3fff::1", "5f00::1", "4000::1", "::2",
    "[::1]", "not-an-ip", "", "127.0.0.1:80", "1.2.3.4.5",
  ])("%s is internal", (ip) => {
    expect(isInternalAddress(ip)).toBe(true);
  });

  test.each([
    "8.8.8.8", "1.1.1.1", "104.16.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255", "192.0.1.1", "198.20.0.1",
    "223.255.255.254", "2606:4700::1111", "2606:4700:4700::1111", "2a00:1450:4001::200e", "2001:4860:4860::8888", "[2606:4700::1111]",
  ])("%s is public", (ip) => {
    expect(isInternalAddress(ip)).toBe(false);
  });

  test.each([
    ["::ffff:127.0.0.60", "127.0.0.60"], ["[::ffff:127.0.0.60]", "127.0.0.60"], ["::ffff:7f00:3c", "127.0.0.60"],
    ["2606:4700:0:0:0:0:0:1111", "2606:4700::1111"], ["FE80::1", "fe80::1"], ["127.0.10.5", "127.0.10.5"], ["nope", "nope"],
  ])("%s is spelled %s", (ip, one) => {
    expect(normalizeAddress(ip)).toBe(one);
  });
});

describe("registrable domains by the Public Suffix List, private section included", () => {
  test.each([
    ["auth.docker.io", "docker.io"], ["registry-1.docker.io", "docker.io"], ["registry.gitlab.com", "gitlab.com"], ["a.b.co.uk", "b.co.uk"],
    ["co.uk", null], ["1.2.3.4", null], ["[::1]", null], ["localhost", null], ["registry.com.ar", "registry.com.ar"],
    ["x.dkr.ecr.us-east-1.amazonaws.com", "ecr.us-east-1.amazonaws.com"], ["bucket.s3.us-west-2.amazonaws.com", "bucket.s3.us-west-2.amazonaws.com"],
    ["10.0.0.5.nip.io", null], ["a.sslip.io", null], ["AUTH.Docker.IO.", "docker.io"],
  ])("registrable domain of %s is %p", (host, domain) => {
    expect(registrableDomain(host)).toBe(domain);
  });

  // Pairs that used to share a "registrable domain" and must not: each is a public suffix of its own.
  test.each([
    ["evil.com.ar", "registry.com.ar"], ["evil-bucket.s3.us-west-2.amazonaws.com", "prod-bucket.s3.us-west-2.amazonaws.com"],
    ["a.run.app", "b.run.app"], ["x.a.run.app", "x.b.run.app"], ["10.0.0.5.nip.io", "6.6.6.6.nip.io"], ["10-0-0-5.sslip.io", "evil.sslip.io"],
    ["registry.vercel.app", "evil.vercel.app"], ["registry.pages.dev", "evil.pages.dev"], ["reg.blob.core.windows.net", "evil.blob.core.windows.net"],
    ["registry.co.il", "evil.co.il"], ["registry.gov.br", "evil.gov.br"], ["registry.ac.jp", "evil.ac.jp"], ["a.github.io", "b.github.io"],
    ["a.herokuapp.com", "b.herokuapp.com"], ["docker.io.evil.example", "registry-1.docker.io"],
  ])("credentials for %s never go to a realm on %s", (upstream, realm) => {
    expect(credentialsMayGoTo(new URL(`https://${realm}/token`), new URL(`https://${upstream}`))).toBe(false);
    expect(credentialsMayGoTo(new URL(`https://${upstream}/token`), new URL(`https://${realm}`))).toBe(false);
  });

  test.each([
    ["registry-1.docker.io", "auth.docker.io"], ["registry.gitlab.com", "gitlab.com"], ["registry.example.co.uk", "auth.example.co.uk"],
    ["ghcr.io", "ghcr.io"], ["127.0.0.21", "127.0.0.21"],
  ])("credentials for %s may go to a realm on %s", (upstream, realm) => {
    expect(credentialsMayGoTo(new URL(`https://${realm}/token`), new URL(`https://${upstream}`))).toBe(true);
  });

  test("a token host the operator listed receives them, by host or host:port", () => {
    expect(credentialsMayGoTo(new URL("http://127.0.0.25/token"), new URL("http://127.0.0.21"))).toBe(false);
    expect(credentialsMayGoTo(new URL("http://127.0.0.25/token"), new URL("http://127.0.0.21"), ["127.0.0.25"])).toBe(true);
    expect(credentialsMayGoTo(new URL("http://127.0.0.25:5001/token"), new URL("http://127.0.0.21"), ["127.0.0.25:5001"])).toBe(true);
    expect(credentialsMayGoTo(new URL("https://sso.corp.example/t"), new URL("https://harbor.corp2.example"), ["sso.corp.example"])).toBe(true);
  });
});
