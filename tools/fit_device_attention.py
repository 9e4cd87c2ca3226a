#!/usr/bin/env python3
"""Decode steps of a Llama-3.1-8B-shaped BF16 model with a KV cache (random weights, SDPA with GQA,
replayed as a CUDA graph) at several batch × context points; prints step milliseconds as JSON.
Run on a GPU machine with PyTorch: python3 tools/fit_device_attention.py  (writes $OUT/a.json).
Result of the run on an H100 80GB HBM3: fixtures/fit/h100-attention-check.json.
"""
import json,os,time,torch
import torch.nn.functional as F
d=torch.device("cuda");h,kv,f,V,L=4096,1024,14336,128256,32
r=lambda *s:torch.randn(*s,dtype=torch.bfloat16,device=d)*0.01
W=[[r(h,h),r(kv,h),r(kv,h),r(h,h),r(f,h),r(f,h),r(h,f)] for _ in range(L)];H=r(V,h)
def T(fn,n=10):
 fn();torch.cuda.synchronize();t=time.perf_counter()
 for _ in range(n):fn()
 torch.cuda.synchronize();return (time.perf_counter()-t)/n
o={}
for B,C in((64,2048),(16,8192),(1,32768),(128,1024)):
 K=[(r(B,8,C,128),r(B,8,C,128)) for _ in range(L)]
 x=r(B,h)
 def s():
  y=x
  for (q,k,v,w,g,u,dd),(kc,vc) in zip(W,K):
   a=(y@q.T).view(B,32,1,128);_=y@k.T;_=y@v.T
   a=F.scaled_dot_product_attention(a,kc,vc,enable_gqa=True).reshape(B,h)
   y=y+a@w.T;y=y+(F.silu(y@g.T)*(y@u.T))@dd.T
  return y@H.T
 s();torch.cuda.synchronize();g=torch.cuda.CUDAGraph()
 with torch.cuda.graph(g):s()
 o[f"{B}x{C}"]=T(g.replay)*1e3;del g,K;torch.cuda.empty_cache()
print(json.dumps(o));json.dump(o,open(os.environ.get("OUT",".")+"/a.json","w"))
