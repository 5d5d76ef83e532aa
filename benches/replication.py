#!/usr/bin/env python3
"""Bench: lab replication us-east -> us-west. Writes N keys with the repl link
disabled (queued), heals it, and times until us-west has applied all N (the
heal-to-nothing-lost time); then N more with the link up. Only 127.0.0.1.
Usage: benches/replication.py target/release/simian 50000"""
import http.client, json, subprocess, sys, tempfile, time
BIN=sys.argv[1]; N=int(sys.argv[2])
assert 1 <= N <= 1_000_000, "N must be 1..1000000"
d=tempfile.mkdtemp()
sim=lambda *a: subprocess.run([BIN,"--state-dir",d,"lab",*a],capture_output=True,check=True)
sim("up","--regions","2","--zones","1","--instances","1")
st=json.load(open(d+"/lab/state.json"))
reg={r["name"]:r for r in st["regions"]}
def conn(url):
    h=url.replace("http://","").split(":"); return http.client.HTTPConnection(h[0],int(h[1]))
east=conn(reg["us-east"]["store"]["url"]); west=reg["us-west"]["store"]["url"]
api=conn(st["proxy_api"])
def req(c,m,p,b=None):
    c.request(m,p,body=b); r=c.getresponse(); return r.status, r.read()
def wait_applied(n, limit=120.0):
    end=time.time()+limit
    while applied()<n:
        if time.time()>end: sys.exit(f"us-west applied {applied()} of {n} within {limit}s")
        time.sleep(0.01)
def applied():
    s,b=req(conn(west),"GET","/replication"); return json.loads(b)["applied"].get("us-east",0)
try:
    req(api,"PATCH","/proxies/repl-us-east-us-west",json.dumps({"enabled":False}))
    t=time.time()
    for i in range(N): assert req(east,"PUT",f"/kv/b-{i}",f"value-{i}".encode())[0]==204
    w=time.time()-t
    print(f"wrote {N} keys to us-east in {w:.2f}s ({N/w:.0f} writes/s) with the link down; us-west has {applied()}")
    t=time.time(); req(api,"PATCH","/proxies/repl-us-east-us-west",json.dumps({"enabled":True}))
    wait_applied(N)
    w=time.time()-t
    print(f"catch-up after heal: {N} records in {w:.2f}s = {N/w:.0f} records/s us-east->us-west")
    # streaming: writes while the link is up
    t=time.time()
    for i in range(N, 2*N): req(east,"PUT",f"/kv/b-{i}",f"value-{i}".encode())
    wait_applied(2*N)
    w=time.time()-t
    print(f"live: {N} writes+replication in {w:.2f}s = {N/w:.0f} records/s")
finally:
    sim("down")
