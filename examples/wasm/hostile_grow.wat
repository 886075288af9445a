;; Hostile WASM model: mv_infer grows linear memory without end, touching each new page.
;; Expected under modelvet: stopped at the memory cap and reported as a `memory` error.
(module
  (memory (export "memory") 1)
  (func (export "mv_alloc") (param $n i32) (result i32) (i32.const 1024))
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
