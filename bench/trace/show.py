#!/usr/bin/env python3
"""Prints one traced run of bench/trace/spawn.bt as a timeline (ms from the exec of modelvet):
SYS lines are syscalls (+duration), runq lines waits for a CPU (~duration), and with a third
argument (sw) context switches. Usage: show.py OUT.txt [RUN_INDEX] [sw]"""
import re, signal, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)
nr={}
for l in open('/usr/include/x86_64-linux-gnu/asm/unistd_64.h'):
    m=re.match(r'#define __NR_(\w+)\s+(\d+)',l)
    if m: nr[int(m.group(2))]=m.group(1)
ev=[]
for l in open(sys.argv[1]):
    m=re.match(r'@log\[\d+\]: \((\d+), (\d+), (\d+), (\d+), (\d+), (.*)\)',l)
    if m: ev.append((int(m.group(1)),int(m.group(2)),int(m.group(3)),int(m.group(4)),int(m.group(5)),m.group(6)))
ev.sort()
starts=[i for i,e in enumerate(ev) if e[2]==1 and e[5]=='modelvet']
which=int(sys.argv[2]) if len(sys.argv)>2 else -1
s=starts[which]; e_=starts[which+1] if which+1<len(starts) and which!=-1 else len(ev)
t0=ev[s][0]
sw = len(sys.argv)>3
for t,tid,k,a,b,comm in ev[s:e_]:
    T=(t-t0)/1e6
    if k==1: print(f"{T:7.3f}          {tid} EXEC {comm}")
    elif k==2: print(f"{T:7.3f} +{b/1e6:6.3f} {comm[:15]:15s} {tid} {nr.get(a,a)}")
    elif k==3: print(f"{T:7.3f} ~{b/1e6:6.3f} {comm[:15]:15s} {tid} runq cpu{a}")
    elif k==4: print(f"{T:7.3f}          {comm[:15]:15s} {tid} EXIT")
    elif k==5 and sw: print(f"{T:7.3f}    cpu{a}  {b} -> {comm}:{tid}")
