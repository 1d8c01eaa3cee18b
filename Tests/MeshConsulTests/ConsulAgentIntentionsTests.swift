/*
 * Copyright 2026, swift-grpc-mesh contributors
 *
 * Licensed under the Apache License, Version 2.0 (the "License");
 * you may not use this file except in compliance with the License.
 * You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */

import Foundation
import MeshConsul
import Testing

@testable import MeshConsulAgent

/// `value` with every `CreateIndex` and `ModifyIndex` set to 0: indexes differ run to run.
func withoutIndexes(_ value: ConsulJSONValue) -> ConsulJSONValue {
  switch value {
  case .array(let elements):
    return .array(elements.map(withoutIndexes))
  case .object(let fields):
    var result: [String: ConsulJSONValue] = [:]
    for (key, field) in fields {
      result[key] =
        key == "CreateIndex" || key == "ModifyIndex" ? .number(0) : withoutIndexes(field)
    }
    return .object(result)
  default:
    return value
  }
}

@Suite("Embedded agent's intentions API", .timeLimit(.minutes(2)))
struct ConsulAgentIntentionsTests {
  let agent = MeshConsulAgent(configuration: MeshConsulAgentConfiguration(port: 0))

  @Test("Intentions written as Consul's Go client writes them read back as Consul answers")
  func exactAndMatch() async throws {
    let body = String(
      decoding: try Fixtures.data("connect_intentions_exact_request.json"),
      as: UTF8.self
    )
    let upsert = await self.agent.call(
      "PUT",
      "/v1/connect/intentions/exact?source=web&destination=db",
      body: body
    )
    #expect(upsert.status == 200, "\(upsert.text)")
    #expect(upsert.text == "true")
    let wildcard = await self.agent.call(
      "PUT",
      "/v1/connect/intentions/exact?source=*&destination=db",
      body: #"{"Action": "deny", "SourceName": "ignored: the URL names the source"}"#
    )
    #expect(wildcard.status == 200, "\(wildcard.text)")

    let match = await self.agent.call("GET", "/v1/connect/intentions/match?by=destination&name=db")
    #expect(match.status == 200, "\(match.text)")
    let expected = try JSONDecoder().decode(
      ConsulJSONValue.self,
      from: Fixtures.data("connect_intentions_match_db.json")
    )
    #expect(withoutIndexes(try json(match.body)) == withoutIndexes(expected), "\(match.text)")
    let index = try #require(match.header("X-Consul-Index").flatMap(UInt64.init))
    #expect(index > 1)
    // Both intentions share their entry's indexes; the query's index is the last change.
    let decoded = try JSONDecoder().decode([String: [ConsulIntention]].self, from: Data(match.body))
    #expect(decoded["db"]?.map(\.modifyIndex) == [index, index])

    // By source: web's own, and those from `*`; a name with none is null, as in Consul.
    let bySource = await self.agent.call(
      "GET",
      "/v1/connect/intentions/match?by=source&name=web&name=nobody"
    )
    let sources = try json(bySource.body)
    guard case .object(let names) = sources else {
      Issue.record("not an object: \(bySource.text)")
      return
    }
    #expect(names.keys.sorted() == ["nobody", "web"])
    #expect(
      names["web"].map(shape)
        == "[{Action:string,CreateIndex:number,Description:string,DestinationNS:string,DestinationName:string,ModifyIndex:number,Precedence:number,SourceNS:string,SourceName:string,SourceType:string}]"
    )
    let unknown = await self.agent.call(
      "GET",
      "/v1/connect/intentions/match?by=destination&name=zzz"
    )
    #expect(unknown.text == #"{"zzz":null}"#)

    let one = await self.agent.call("GET", "/v1/connect/intentions/exact?source=web&destination=db")
    #expect(try JSONDecoder().decode(ConsulIntention.self, from: Data(one.body)).action == "allow")
    let list = try JSONDecoder().decode(
      [ConsulIntention].self,
      from: Data(await self.agent.call("GET", "/v1/connect/intentions").body)
    )
    #expect(list.map(\.sourceName) == ["web", "*"], "precedence order")

    for (source, allowed) in [("web", true), ("api", false)] {
      let check = await self.agent.call(
        "GET",
        "/v1/connect/intentions/check?source=\(source)&destination=db"
      )
      #expect(check.text == #"{"Allowed":\#(allowed)}"#, "\(source)")
    }
    // No intention to `cache`: the default, allow (no ACLs, as Consul in dev mode).
    let open = await self.agent.call(
      "GET",
      "/v1/connect/intentions/check?source=web&destination=cache"
    )
    #expect(open.text == #"{"Allowed":true}"#)

    for _ in 0..<2 {  // idempotent, as in Consul
      let delete = await self.agent.call(
        "DELETE",
        "/v1/connect/intentions/exact?source=web&destination=db"
      )
      #expect(delete.status == 200 && delete.text == "true", "\(delete.text)")
    }
    let gone = await self.agent.call(
      "GET",
      "/v1/connect/intentions/exact?source=web&destination=db"
    )
    #expect(gone.status == 404 && gone.text == "Intention not found")
  }

  @Test(
    "Bad intention requests get Consul's status and words",
    arguments: [
      (
        "PUT", "/v1/connect/intentions/exact?destination=db", #"{"Action":"allow"}"#, 500,
        "required query parameter 'source' not set"
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=web&destination=db", #"{"Action":"maybe"}"#,
        500,
        "Sources[0].Action must be set to 'allow' or 'deny'"
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=web&destination=db", #"{"Bogus":1}"#, 400,
        #"Request decode failed: json: unknown field "Bogus""#
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=we*b&destination=db", #"{"Action":"allow"}"#,
        500, "Sources[0].Name: wildcard character '*' cannot be used with partial values"
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=a/b/c/d&destination=db",
        #"{"Action":"allow"}"#, 500,
        #"source "a/b/c/d" is invalid: input can contain at most two '/'"#
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=web&destination=db",
        #"{"Action":"allow","Meta":{"a":"b"}}"#,
        500, "Meta must not be specified"
      ),
      (
        "GET", "/v1/connect/intentions/match?name=db", "", 500,
        "required query parameter 'by' not set"
      ),
      (
        "GET", "/v1/connect/intentions/match?by=both&name=db", "", 500,
        "'by' parameter must be one of 'source' or 'destination'"
      ),
      (
        "GET", "/v1/connect/intentions/match?by=source", "", 500,
        "required query parameter 'name' not set"
      ),
      (
        "GET", "/v1/connect/intentions/check?source=web&destination=db&source-type=x", "", 500,
        #"unsupported SourceType: "x""#
      ),
      (
        "PUT", "/v1/config", #"{"Name":"db"}"#, 400,
        "Request decoding failed: Payload does not contain a kind/Kind key at the top level"
      ),
      (
        "PUT", "/v1/config", #"{"Kind":"service-intentions","Name":"db","Sources":[]}"#, 500,
        "At least one source is required"
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Action":"allow","Permissions":[{"Action":"allow","HTTP":{"PathExact":"/a"}}]}]}"#,
        500, "Sources[0].Action must be omitted if Permissions are specified"
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"*","Sources":[{"Name":"web","Permissions":[{"Action":"allow","HTTP":{"PathExact":"/a"}}]}]}"#,
        500, "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations"
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Permissions":[{"Action":"allow","HTTP":{"PathExact":"a"}}]}]}"#,
        500, #"Sources[0].Permissions[0].HTTP.PathExact doesn't start with '/': "a""#
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Permissions":[{"Action":"allow","HTTP":{"PathExact":"/a","PathPrefix":"/"}}]}]}"#,
        500,
        "Sources[0].Permissions[0].HTTP should only contain at most one of PathExact, PathPrefix, or PathRegex"
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Permissions":[{"Action":"allow"}]}]}"#,
        500, "Sources[0].Permissions[0].HTTP is required"
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Action":"allow"},{"Name":"web","Action":"deny"}]}"#,
        500, #"Sources[1] defines "web" more than once"#
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Peer":"dc2","Action":"allow"}]}"#,
        500, "Sources[0].Peer is not supported by this agent (Consul CE, one cluster)"
      ),
      (
        "PUT", "/v1/config",
        #"{"Kind":"service-intentions","Name":"db","Sources":[{"Name":"web","Action":"allow","JWT":{"Providers":[]}}]}"#,
        500, "Sources[0]: JWT requirements are not supported by this agent"
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=web&destination=db",
        #"{"Action":"allow","SourcePeer":"dc2"}"#,
        500, "Sources[0].Peer is not supported by this agent (Consul CE, one cluster)"
      ),
      (
        "PUT", "/v1/connect/intentions/exact?source=team-b/web&destination=db",
        #"{"Action":"allow"}"#, 500,
        #"source "team-b/web" is invalid: namespaces and partitions are a Consul Enterprise feature"#
      ),
      (
        "DELETE", "/v1/config/service-intentions", "", 404,
        "Must provide both a kind and name to delete"
      ),
      (
        "GET", "/v1/config/service-intentions/nothing", "", 404,
        #"Config entry not found for "service-intentions" / "nothing""#
      ),
    ] as [(String, String, String, Int, String)]
  )
  func badRequests(
    method: String,
    path: String,
    body: String,
    status: Int,
    message: String
  ) async {
    let response = await self.agent.call(method, path, body: body.isEmpty ? nil : body)
    #expect(response.status == status, "\(response.text)")
    #expect(response.text == message)
  }

  @Test("A service-intentions entry with gRPC permissions is stored and read as Consul's")
  func configEntry() async throws {
    let body = String(
      decoding: try Fixtures.data("config_entry_service_intentions_grpc.json"),
      as: UTF8.self
    )
    let put = await self.agent.call("PUT", "/v1/config", body: body)
    #expect(put.status == 200 && put.text == "true", "\(put.text)")
    let read = await self.agent.call("GET", "/v1/config/service-intentions/billing")
    #expect(read.status == 200, "\(read.text)")
    let expected = try JSONDecoder().decode(
      ConsulJSONValue.self,
      from: Fixtures.data("config_entry_service_intentions_billing.json")
    )
    // Methods upper-cased, precedence and type filled in, as Consul normalises them.
    #expect(withoutIndexes(try json(read.body)) == withoutIndexes(expected), "\(read.text)")
    let index = read.header("X-Consul-Index")

    // The same entry again changes nothing: the index stays.
    _ = await self.agent.call("PUT", "/v1/config", body: body)
    let again = await self.agent.call("GET", "/v1/config/service-intentions/billing")
    #expect(again.header("X-Consul-Index") == index)

    // The intention views carry the permissions; `check` counts an L7 intention as deny.
    let match = try JSONDecoder().decode(
      [String: [ConsulIntention]].self,
      from: Data(
        await self.agent.call("GET", "/v1/connect/intentions/match?by=destination&name=billing")
          .body
      )
    )
    let frontend = try #require(match["billing"]?.first)
    #expect(frontend.sourceName == "frontend" && frontend.action == nil)
    #expect(
      frontend.permissions?.map(\.http?.pathExact) == [
        "/mycompany.BillingService/IssueRefund", nil,
      ]
    )
    let check = await self.agent.call(
      "GET",
      "/v1/connect/intentions/check?source=frontend&destination=billing"
    )
    #expect(check.text == #"{"Allowed":false}"#)

    // Compare-and-set: a stale index is refused with false.
    let stale = await self.agent.call("PUT", "/v1/config?cas=1", body: body)
    #expect(stale.text == "false")
    let list = await self.agent.call("GET", "/v1/config/service-intentions")
    #expect(
      try JSONDecoder().decode([ConsulServiceIntentions].self, from: Data(list.body)).map(\.name)
        == ["billing"]
    )

    let delete = await self.agent.call("DELETE", "/v1/config/service-intentions/billing")
    #expect(delete.status == 200 && delete.text == "{}")
    let gone = await self.agent.call(
      "GET",
      "/v1/connect/intentions/match?by=destination&name=billing"
    )
    #expect(gone.text == #"{"billing":null}"#)
  }

  @Test("Names with the default namespace are the plain names; deletes honour ?cas")
  func namespacedNamesAndCAS() async throws {
    let upsert = await self.agent.call(
      "PUT",
      "/v1/connect/intentions/exact?source=default/web&destination=default/default/db",
      body: #"{"Action": "deny"}"#
    )
    #expect(upsert.text == "true", "\(upsert.text)")
    let plain = await self.agent.call(
      "GET",
      "/v1/connect/intentions/exact?source=web&destination=db"
    )
    #expect(try JSONDecoder().decode(ConsulIntention.self, from: Data(plain.body)).action == "deny")
    let match = await self.agent.call(
      "GET",
      "/v1/connect/intentions/match?by=destination&name=default/db"
    )
    let matched = try JSONDecoder().decode([String: [ConsulIntention]].self, from: Data(match.body))
    #expect(matched["default/db"]?.map(\.sourceName) == ["web"], "keyed by the name as given")

    let entry = await self.agent.call("GET", "/v1/config/service-intentions/db")
    let index = try JSONDecoder().decode(ConsulServiceIntentions.self, from: Data(entry.body))
      .modifyIndex
    let stale = await self.agent.call("DELETE", "/v1/config/service-intentions/db?cas=\(index - 1)")
    #expect(stale.text == "false")
    let fresh = await self.agent.call("DELETE", "/v1/config/service-intentions/db?cas=\(index)")
    #expect(fresh.text == "true")
    let missing = await self.agent.call("GET", "/v1/config/service-intentions/db")
    #expect(missing.status == 404)
    #expect(missing.header("X-Consul-Index").flatMap(UInt64.init).map { $0 > index } == true)
  }

  @Test("A blocking match query returns when an intention to its name changes")
  func blockingMatch() async throws {
    try await withAgent { _, client in
      try await client.upsertIntention(
        ConsulIntention(sourceName: "web", destinationName: "db", action: "allow")
      )
      let first = try await client.intentionsMatching(destination: "db")
      #expect(first.value["db"]?.map(\.action) == ["allow"])
      try await withThrowingTaskGroup(of: ConsulResponse<[String: [ConsulIntention]]>.self) {
        group in
        group.addTask {
          try await client.intentionsMatching(
            destination: "db",
            index: first.index,
            wait: .seconds(60)
          )
        }
        try await client.upsertIntention(
          ConsulIntention(sourceName: "web", destinationName: "db", action: "deny")
        )
        let next = try #require(try await group.next())
        #expect(next.index > first.index)
        #expect(next.value["db"]?.map(\.action) == ["deny"])
      }
      try await client.deleteIntention(source: "web", destination: "db")
      #expect(try await client.intentionsMatching(destination: "db").value["db"] == [])
    }
  }
}
