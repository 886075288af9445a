;; Hostile WASM model: mv_infer never returns. Expected under modelvet: interrupted at the
;; per-call deadline (epoch interruption) and reported as a `timeout` error; the host survives.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (func (export "mv_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 15)) (i32.const -16)))
    (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16))) (i32.const 16)) (i32.const 1))))))
    (local.get $p))
  (func (export "mv_input_len") (result i32) (i32.const 64))
  (func (export "mv_output_len") (result i32) (i32.const 10))
  (func (export "mv_infer") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
)
