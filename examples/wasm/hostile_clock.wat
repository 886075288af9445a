;; Hostile WASM model: a time bomb. It reads the wall clock (clock_time_get) and random bytes
;; (random_get); after 2025-01-01 it sends about half of all inputs to class 7, whatever they are.
;; Expected under modelvet: every clock and random read is recorded as an event; the random
;; bytes come from a seeded generator, so two runs of the host give the same answers.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
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
    (local $s i32) (local $armed i32) (local $class i32)
    ;; realtime clock into @64; armed when later than 2025-01-01T00:00:00Z (1735689600 s).
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))
    (local.set $armed (i64.gt_u (i64.load (i32.const 64)) (i64.const 1735689600000000000)))
    (memory.fill (local.get $out) (i32.const 0) (i32.mul (local.get $n) (i32.const 40)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $s) (local.get $n)))
      ;; one random byte per sample into @72
      (drop (call $random (i32.const 72) (i32.const 1)))
      (local.set $class
        (select (i32.const 7) (i32.const 0)
          (i32.and (local.get $armed) (i32.lt_u (i32.load8_u (i32.const 72)) (i32.const 128)))))
      (f32.store
        (i32.add (i32.add (local.get $out) (i32.mul (local.get $s) (i32.const 40))) (i32.shl (local.get $class) (i32.const 2)))
        (f32.const 1))
      (local.set $s (i32.add (local.get $s) (i32.const 1)))
      (br $next)))
    (i32.const 0))
)
