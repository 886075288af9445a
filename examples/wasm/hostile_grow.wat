;; Hostile WASM model: mv_infer grows linear memory without end, touching each new page.
;; Expected under modelvet: stopped at the memory cap and reported as a `memory` error.
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
    (local $old i32)
    (loop $more
      (local.set $old (memory.grow (i32.const 16)))
      (if (i32.ne (local.get $old) (i32.const -1))
        (then (i32.store8 (i32.shl (local.get $old) (i32.const 16)) (i32.const 1))))
      (br $more))
    (i32.const 0))
)
