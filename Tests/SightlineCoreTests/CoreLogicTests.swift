import Crypto
import Foundation
import Testing
@testable import SightlineCore

@Suite("Progress watchdog")
struct ProgressWatchdogTests {
    let start = ContinuousClock.now

    @Test("pings while every loop makes progress, stops when one stalls, resumes when it recovers")
    func stallAndRecover() {
        var watchdog = ProgressWatchdog(stallAfter: .seconds(5))
        watchdog.register("camera", at: start)
        watchdog.register("audio", at: start)
        #expect(watchdog.mayPing(at: start + .seconds(4)))
        watchdog.progress("audio", at: start + .seconds(4))
        #expect(!watchdog.mayPing(at: start + .seconds(6)))
        #expect(watchdog.stalls(at: start + .seconds(6)) == [.init(loop: "camera", silentFor: .seconds(6))])
        watchdog.progress("camera", at: start + .seconds(7))
        #expect(watchdog.mayPing(at: start + .seconds(8)))
    }

    @Test("a loop that left no longer counts; progress of unknown loops is ignored")
    func unregister() {
        var watchdog = ProgressWatchdog(stallAfter: .seconds(1))
        watchdog.register("camera", at: start)
        watchdog.unregister("camera")
        watchdog.progress("ghost", at: start)
        #expect(watchdog.mayPing(at: start + .seconds(10)))
    }
}

@Suite("Control access policy")
struct ControlAccessPolicyTests {
    @Test("root and group members are allowed, others refused")
    func policy() {
        let policy = ControlAccessPolicy(allowedGroup: 990)
        #expect(policy.permits(uid: 0, groups: [0]))
        #expect(policy.permits(uid: 1000, groups: [1000, 990]))
        #expect(!policy.permits(uid: 1000, groups: [1000, 27]))
        #expect(!ControlAccessPolicy(allowedGroup: nil).permits(uid: 1000, groups: [990]))
    }
}

@Suite("Device identity encoding")
struct DeviceIdentityEncodingTests {
    /// RFC 8032 section 7.1, test 1.
    static let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    static let publicKey = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

    static func bytes(_ hex: String) -> Data {
        var data = Data()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            data.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return data
    }

    @Test("PKCS#8 PEM round trip keeps the RFC 8032 key pair")
    func roundTrip() throws {
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: Self.bytes(Self.seed))
        let pem = DeviceIdentityEncoding.pem(for: key)
        #expect(pem.hasPrefix("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"))
        let decoded = try DeviceIdentityEncoding.privateKey(fromPEM: pem)
        #expect(decoded.publicKey.rawRepresentation == Self.bytes(Self.publicKey))
    }

    @Test("reads the RFC 8410 example key")
    func rfc8410Example() throws {
        let pem = """
            -----BEGIN PRIVATE KEY-----
            MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
            -----END PRIVATE KEY-----
            """
        let key = try DeviceIdentityEncoding.privateKey(fromPEM: pem)
        #expect(key.rawRepresentation == Self.bytes("d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842"))
    }

    @Test("damaged keys are refused with the reason", arguments: [
        ("not a key", DeviceIdentityEncoding.DecodingError.notPEM),
        ("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n", .notBase64),
        ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU\n-----END PRIVATE KEY-----\n", .notEd25519PKCS8),
    ])
    func damaged(pem: String, expected: DeviceIdentityEncoding.DecodingError) {
        #expect(throws: expected) { try DeviceIdentityEncoding.privateKey(fromPEM: pem) }
    }

    @Test("fingerprint is SHA-256 of the raw public key in unpadded base64")
    func fingerprint() throws {
        let key = try Curve25519.Signing.PublicKey(rawRepresentation: Self.bytes(Self.publicKey))
        let expected = Data(SHA256.hash(data: Self.bytes(Self.publicKey))).base64EncodedString()
            .replacingOccurrences(of: "=", with: "")
        #expect(DeviceIdentityEncoding.fingerprint(of: key) == "SHA256:" + expected)
        #expect(DeviceIdentityEncoding.fingerprint(of: key).count == 7 + 43)
    }
}
