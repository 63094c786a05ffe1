#!/usr/bin/env python3
"""SCIM 2.0 conformance, as identity providers speak it: replays the request sequences that
Okta's SCIM 2.0 provisioning guide and Microsoft Entra ID's SCIM provisioning tutorial show
(their bodies, their casing: Okta's PATCH with a value object, Entra's "Replace"/"Add"/
"Remove" and the string "False"), against a running server, checking statuses and bodies.

An independent client: Python's standard library only (urllib), nothing from the server.

    idp_conformance.py --base http://127.0.0.1:8080/scim/v2 --token <API key>

Exit status 0 when every check passed; each check is printed.
"""

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Client:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.token = token
        self.failures = []
        self.checks = 0

    def request(self, method, path, body=None, token=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token or self.token))
        req.add_header("Accept", "application/scim+json")
        if data is not None:
            req.add_header("Content-Type", "application/scim+json; charset=utf-8")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, raw, ctype = err.code, err.read(), err.headers.get("Content-Type", "")
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = {"_unparsed": raw.decode(errors="replace")}
        return status, parsed, ctype

    def check(self, what, ok, detail=""):
        self.checks += 1
        print(("ok   " if ok else "FAIL ") + what + ("" if ok else f"  -- {detail}"))
        if not ok:
            self.failures.append(what)
        return ok

    def expect(self, what, method, path, body=None, statuses=(200,)):
        status, parsed, ctype = self.request(method, path, body)
        self.check(f"{what}: {method} {path} -> {status}", status in statuses,
                   f"expected {statuses}, body {json.dumps(parsed)[:400]}")
        if parsed is not None and status != 204:
            self.check(f"{what}: SCIM content type", "application/scim+json" in ctype
                       or "application/json" in ctype, ctype)
        return status, parsed


def eq(attr, value):
    """A filter `attr eq "value"`, URL-encoded."""
    return urllib.parse.quote(f'{attr} eq "{value}"', safe="")


def okta(c):
    """Okta: SCIM 2.0 provisioning reference (Users: lookup by userName, create, get, PUT,
    deactivate/reactivate with PATCH replace {active}; Groups: create, rename, members)."""
    login = f"okta.{uuid.uuid4().hex[:8]}@example.com"
    _, found = c.expect("okta: lookup before create", "GET",
                        f"/Users?filter={eq('userName', login)}&startIndex=1&count=100")
    c.check("okta: lookup answers an empty ListResponse",
            found and LIST in found.get("schemas", []) and found.get("totalResults") == 0
            and found.get("Resources", []) == [], found)
    body = {
        "schemas": [USER],
        "userName": login,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq-Okta-pw",
        "active": True,
    }
    status, user = c.expect("okta: create user", "POST", "/Users", body, (201,))
    if status != 201:
        return
    uid = user.get("id")
    c.check("okta: created user has id, userName (lower case), active, meta",
            bool(uid) and user.get("userName") == login.lower() and user.get("active") is True
            and user.get("meta", {}).get("resourceType") == "User"
            and user["meta"].get("location", "").endswith(f"/Users/{uid}"), user)
    c.check("okta: created user has the work email",
            any(e.get("value") == login for e in user.get("emails", [])), user)
    status, again = c.expect("okta: duplicate create", "POST", "/Users", body, (409,))
    c.check("okta: duplicate answers a SCIM error uniqueness",
            again and ERROR in again.get("schemas", []) and again.get("scimType") == "uniqueness"
            and again.get("status") == "409", again)
    _, got = c.expect("okta: get user", "GET", f"/Users/{uid}")
    c.check("okta: get returns the same user", got and got.get("id") == uid, got)
    _, found = c.expect("okta: lookup after create", "GET",
                        f"/Users?filter={eq('userName', login)}&startIndex=1&count=100")
    c.check("okta: lookup finds exactly the user",
            found and found.get("totalResults") == 1 and found["Resources"][0].get("id") == uid,
            found)
    put = dict(body, id=uid, name={"givenName": "Another", "familyName": "User"},
               displayName="Another User")
    put.pop("password")
    _, replaced = c.expect("okta: PUT user", "PUT", f"/Users/{uid}", put)
    # The directory keeps one name (displayName, also name.formatted); name parts are
    # accepted and not stored.
    c.check("okta: PUT changed the name",
            replaced and replaced.get("displayName") == "Another User", replaced)
    deactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    _, patched = c.expect("okta: deactivate (PATCH replace {active:false})", "PATCH",
                          f"/Users/{uid}", deactivate)
    c.check("okta: user inactive", patched and patched.get("active") is False, patched)
    _, got = c.expect("okta: get deactivated user", "GET", f"/Users/{uid}")
    c.check("okta: still inactive when read back", got and got.get("active") is False, got)
    reactivate = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]}
    _, patched = c.expect("okta: reactivate", "PATCH", f"/Users/{uid}", reactivate)
    c.check("okta: user active again", patched and patched.get("active") is True, patched)

    # Groups (Okta's Group Push).
    name = f"Okta Push {uuid.uuid4().hex[:6]}"
    status, group = c.expect("okta: create group", "POST", "/Groups",
                             {"schemas": [GROUP], "displayName": name, "members": []}, (201,))
    if status != 201:
        return
    gid = group.get("id")
    c.check("okta: group created empty", group.get("displayName") == name
            and group.get("members", []) == [], group)
    _, found = c.expect("okta: group lookup", "GET",
                        f"/Groups?filter={eq('displayName', name)}&startIndex=1&count=100")
    c.check("okta: group found", found and found.get("totalResults") == 1, found)
    c.expect("okta: rename group", "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "value": {"id": gid, "displayName": name + " renamed"}}],
    }, (200, 204))
    c.expect("okta: add member", "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "add", "path": "members",
                        "value": [{"value": uid, "display": login}]}],
    }, (200, 204))
    _, got = c.expect("okta: get group", "GET", f"/Groups/{gid}")
    c.check("okta: renamed, with the member",
            got and got.get("displayName") == name + " renamed"
            and [m.get("value") for m in got.get("members", [])] == [uid], got)
    c.expect("okta: remove member", "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "remove", "path": f"members[value eq \"{uid}\"]"}],
    }, (200, 204))
    _, got = c.expect("okta: get group after removal", "GET", f"/Groups/{gid}")
    c.check("okta: no member left", got and got.get("members", []) == [], got)
    c.expect("okta: delete group", "DELETE", f"/Groups/{gid}", statuses=(204,))
    c.expect("okta: deleted group is gone", "GET", f"/Groups/{gid}", statuses=(404,))
    c.expect("okta: delete user", "DELETE", f"/Users/{uid}", statuses=(204,))


def entra(c):
    """Microsoft Entra ID: the request/response examples of the SCIM provisioning tutorial
    ("Develop and plan provisioning for a SCIM endpoint")."""
    login = f"Test_User_{uuid.uuid4()}@testuser.com"
    external = str(uuid.uuid4())
    _, found = c.expect("entra: get user by query (none yet)", "GET",
                        f"/Users?filter={eq('userName', login)}")
    c.check("entra: zero results", found and found.get("totalResults") == 0, found)
    status, user = c.expect("entra: create user", "POST", "/Users", {
        "schemas": [USER, ENTERPRISE],
        "externalId": external,
        "userName": login,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": login}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName",
                 "givenName": "givenName"},
        "roles": [],
    }, (201,))
    if status != 201:
        return
    uid = user.get("id")
    c.check("entra: created, active, externalId kept", bool(uid) and user.get("active") is True
            and user.get("externalId") == external, user)
    _, found = c.expect("entra: get user by externalId", "GET",
                        f"/Users?filter={eq('externalId', external)}")
    c.check("entra: found by externalId", found and found.get("totalResults") == 1
            and found["Resources"][0].get("id") == uid, found)
    _, found = c.expect("entra: get user by query", "GET",
                        f"/Users?filter={eq('userName', login)}")
    c.check("entra: one result", found and found.get("totalResults") == 1
            and found["Resources"][0].get("id") == uid, found)
    _, found = c.expect("attributes=userName", "GET",
                        f"/Users?filter={eq('userName', login)}&attributes=userName")
    c.check("attributes=userName: id, schemas, meta and userName only", found
            and found.get("totalResults") == 1
            and set(found["Resources"][0]) == {"id", "schemas", "meta", "userName"}, found)
    dept = ENTERPRISE + ":department"
    _, got = c.expect("excludedAttributes of an extension", "GET",
                      f"/Users/{uid}?excludedAttributes={urllib.parse.quote(dept)},emails")
    c.check("excludedAttributes: department and emails left out, the rest kept", got
            and "department" not in got.get(ENTERPRISE, {}) and "emails" not in got
            and got.get("userName") == login.lower(), got)
    c.expect("entra: get user by a made-up id", "GET", "/Users/5171a35d82074e068ce2",
             statuses=(404,))
    _, patched = c.expect("entra: update multi-valued and sub-attributes", "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH],
        "Operations": [
            {"op": "Replace", "path": "emails[type eq \"work\"].value",
             "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        ],
    })
    # E-mail addresses are kept in lower case; name parts are accepted and not stored (the
    # directory keeps one name, displayName).
    c.check("entra: email updated", patched
            and any(e.get("value", "").lower() == "updatedemail@microsoft.com"
                    for e in patched.get("emails", [])), patched)
    new_login = f"{uuid.uuid4()}@testuser.com"
    _, patched = c.expect("entra: update a single-valued attribute (userName)", "PATCH",
                          f"/Users/{uid}", {
                              "schemas": [PATCH],
                              "Operations": [{"op": "Replace", "path": "userName",
                                              "value": new_login}],
                          })
    c.check("entra: userName updated", patched and patched.get("userName") == new_login, patched)
    _, patched = c.expect("entra: disable user (value false)", "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": False}],
    })
    c.check("entra: disabled", patched and patched.get("active") is False, patched)
    _, patched = c.expect("entra: enable (\"True\" as a string)", "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "True"}],
    })
    c.check("entra: enabled", patched and patched.get("active") is True, patched)
    _, patched = c.expect("entra: disable (\"False\" as a string)", "PATCH", f"/Users/{uid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
    })
    c.check("entra: disabled again", patched and patched.get("active") is False, patched)

    # Groups.
    name = f"displayName {uuid.uuid4().hex[:6]}"
    status, group = c.expect("entra: create group", "POST", "/Groups", {
        "schemas": [GROUP],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "id": "c4d56b67-ba3a-4b1b-8f30-7a2b18e0ee4d",
        "displayName": name,
        "meta": {"resourceType": "Group"},
    }, (201,))
    if status != 201:
        return
    gid = group.get("id")
    c.check("entra: the server chose the id", gid and gid != "c4d56b67-ba3a-4b1b-8f30-7a2b18e0ee4d",
            group)
    c.expect("entra: get group without members", "GET",
             f"/Groups/{gid}?excludedAttributes=members")
    _, found = c.expect("entra: get group by displayName", "GET",
                        f"/Groups?excludedAttributes=members&filter={eq('displayName', name)}")
    c.check("entra: group found", found and found.get("totalResults") == 1, found)
    c.expect("entra: update group (displayName)", "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "Replace", "path": "displayName", "value": name + "updatedDisplayName"}],
    }, (200, 204))
    c.expect("entra: add member", "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid}]}],
    }, (200, 204))
    _, got = c.expect("entra: group without members", "GET",
                      f"/Groups/{gid}?excludedAttributes=members")
    c.check("entra: excludedAttributes=members leaves them out", got and "members" not in got
            and got.get("id") == gid and "displayName" in got, got)
    _, got = c.expect("entra: group read back", "GET", f"/Groups/{gid}")
    c.check("entra: renamed, with the member", got
            and got.get("displayName") == name + "updatedDisplayName"
            and [m.get("value") for m in got.get("members", [])] == [uid], got)
    c.expect("entra: remove member (path members, value list)", "PATCH", f"/Groups/{gid}", {
        "schemas": [PATCH],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": None, "value": uid}]}],
    }, (200, 204))
    _, got = c.expect("entra: group read back after removal", "GET", f"/Groups/{gid}")
    c.check("entra: no member left", got and got.get("members", []) == [], got)
    c.expect("entra: delete group", "DELETE", f"/Groups/{gid}", statuses=(204,))
    c.expect("entra: delete user", "DELETE", f"/Users/{uid}", statuses=(204,))
    c.expect("entra: deleted user is gone", "GET", f"/Users/{uid}", statuses=(404,))


def bulk(c):
    """RFC 7644 §3.7's own example, shortened: a group whose member is a user created in the
    same request (referenced by bulkId, listed after it), then both deleted in a second
    request with failOnErrors."""
    _, spc = c.request("GET", "/ServiceProviderConfig")[:2]
    b = (spc or {}).get("bulk", {})
    c.check("bulk: advertised with limits", b.get("supported") is True
            and b.get("maxOperations", 0) > 0 and b.get("maxPayloadSize", 0) > 0, b)
    login = f"bulk.{uuid.uuid4().hex[:8]}@example.com"
    _, resp = c.expect("bulk: create user and group", "POST", "/Bulk", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "qwerty",
             "data": {"schemas": [USER], "userName": login, "displayName": "Alice Bulk"}},
            {"method": "POST", "path": "/Groups", "bulkId": "ytrewq",
             "data": {"schemas": [GROUP], "displayName": "Bulk " + login,
                      "members": [{"type": "User", "value": "bulkId:qwerty"}]}},
        ]}, statuses=(200,))
    ops = {o.get("bulkId"): o for o in (resp or {}).get("Operations", [])}
    ok = all(ops.get(k, {}).get("status") == "201" for k in ("qwerty", "ytrewq"))
    c.check("bulk: both created (201, location)", ok and all(
        ops[k].get("location") for k in ops), resp)
    if not ok:
        return
    uid = ops["qwerty"]["location"].rsplit("/", 1)[-1]
    gid = ops["ytrewq"]["location"].rsplit("/", 1)[-1]
    _, g = c.expect("bulk: the group", "GET", f"/Groups/{gid}")
    c.check("bulk: the member is the new user",
            g and [m.get("value") for m in g.get("members", [])] == [uid], g)
    _, resp = c.expect("bulk: delete both", "POST", "/Bulk", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "DELETE", "path": f"/Groups/{gid}"},
            {"method": "DELETE", "path": f"/Users/{uid}"},
            {"method": "DELETE", "path": f"/Users/{uid}"},
        ]}, statuses=(200,))
    statuses = [o.get("status") for o in (resp or {}).get("Operations", [])]
    c.check("bulk: deleted, the repeated delete is 404", statuses == ["204", "204", "404"], resp)
    c.expect("bulk: the user is gone", "GET", f"/Users/{uid}", statuses=(404,))


def discovery(c):
    _, spc = c.expect("discovery: ServiceProviderConfig", "GET", "/ServiceProviderConfig")
    c.check("discovery: patch and filter supported", spc and spc.get("patch", {}).get("supported")
            is True and spc.get("filter", {}).get("supported") is True, spc)
    c.expect("discovery: ResourceTypes", "GET", "/ResourceTypes")
    c.expect("discovery: Schemas", "GET", "/Schemas")
    status, _, _ = c.request("GET", "/Users", token="not-a-key")
    c.check("auth: a wrong bearer token is refused with 401", status == 401, status)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the SCIM base URL, e.g. http://host/scim/v2")
    parser.add_argument("--token", required=True, help="an administrator's API key")
    args = parser.parse_args()
    c = Client(args.base, args.token)
    discovery(c)
    okta(c)
    entra(c)
    bulk(c)
    print(f"{c.checks} checks, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())
