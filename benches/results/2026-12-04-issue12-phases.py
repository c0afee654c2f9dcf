"""The phases of a one-connection batch, from the stderr of a server built with
2026-12-04-issue12-phase-probe.patch (PHASE lines from the writer, NET lines from the
network side and the encoder): medians over the large batches, the first five left out.

    python3 benches/results/2026-12-04-issue12-phases.py SERVE_STDERR
"""
import bisect
import statistics as st
import sys

ev=[]
for line in open(sys.argv[1]):
    if line.startswith('PHASE'):
        d=dict(kv.split('=') for kv in line.split()[1:]); d={k:int(v) for k,v in d.items()}
        ev.append(('W',d['start'],d))
    elif line.startswith('NET'):
        k,v=line.split()[1].split('='); ev.append(('N',int(v),k))
ev.sort(key=lambda e:e[1])
# large batches: writer phases with prefetched->decided > 1000us
W=[e[2] for e in ev if e[0]=='W' and e[2].get('decided',0)-e[2].get('prefetched',0)>1000]
W=W[5:]
def med(xs): return st.median(xs)
order=['start','dropped','pendingindex','probed','marked','prefetched','decidedall','encoded','chunkspushed','reversalsindexed','sealed','decided','logwritten','answered','committed','enddrop']
print(len(W),"large batches")
for a,b in zip(order,order[1:]):
    xs=[w[b]-w[a] for w in W if a in w and b in w]
    if xs: print(f"{a:>12} -> {b:<12} median {med(xs)/1000:6.3f} ms  p10 {sorted(xs)[len(xs)//10]/1000:6.3f} p90 {sorted(xs)[9*len(xs)//10]/1000:6.3f}")
# net: per call: decodestart, called, parsed, answerbuilt, encodestart; align with writer start
N=[e for e in ev if e[0]=='N']
calls=[]; cur={}
for _,t,k in N:
    if k=='decodestart': cur={'decodestart':t}
    else: cur[k]=t
    if k=='encodestart': calls.append(cur); cur={}
calls=calls[5:]
ef=[t for _,t,k in N if k=='encfinishgot']; es=[t for _,t,k in N if k=='encindexpartsent']
dd=[]; ee=[]
for w in W:
    if 'decidedall' not in w: continue
    j=bisect.bisect_left(ef,w['decidedall'])
    if j<len(ef): dd.append(ef[j]-w['decidedall'])
    if j<len(es): ee.append(es[j]-w['encoded'])
if dd: print(f"writer decidedall -> encoder got Finish: median {med(dd)/1000:.3f} ms (the encoder's lag); writer encoded -> index part sent {med(ee)/1000:.3f} ms")
no=['decodestart','called','parsed','answerbuilt','encodestart']
for a,b in zip(no,no[1:]):
    xs=[c[b]-c[a] for c in calls if a in c and b in c]
    if xs: print(f"{a:>12} -> {b:<12} median {med(xs)/1000:6.3f} ms")
# cross: parsed -> writer start ; writer answered -> answerbuilt; encodestart -> next decodestart
ws=[w['start'] for w in W]
x=[];y=[];z=[];cyc=[]
for i,c in enumerate(calls):
    j=bisect.bisect_left(ws,c.get('parsed',0))
    if j<len(W): x.append(W[j]['start']-c['parsed'])
    if j<len(W) and 'answerbuilt' in c: y.append(c['answerbuilt']-W[j]['answered'])
    if i+1<len(calls): z.append(calls[i+1]['decodestart']-c['encodestart']); cyc.append(calls[i+1]['decodestart']-c['decodestart'])
print(f"parsed -> writer start median {med(x)/1000:.3f} ms; writer answered -> answer built {med(y)/1000:.3f} ms; encodestart -> next decodestart {med(z)/1000:.3f} ms; cycle {med(cyc)/1000:.3f} ms")
