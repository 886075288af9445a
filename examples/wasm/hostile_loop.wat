;; Hostile WASM model: mv_infer never returns. Expected under modelvet: interrupted at the
;; per-call deadline (epoch interruption) and reported as a `timeout` error; the host survives.
(module
  (memory (export "memory") 1)
  (func (export "mv_alloc") (param $n i32) (result i32) (i32.const 1024))
  (func (export "mv_input_len") (result i32) (i32.const 64))
  (func (export "mv_output_len") (result i32) (i32.const 10))
  (func (export "mv_infer") (param $in i32) (param $n i32) (param $out i32) (result i32)
    (loop $forever (br $forever))
    (i32.const 0))
)
