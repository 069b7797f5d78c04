"""Pure cores of the device nodes (no rclpy): PortAudio devices and errors, camera frames."""
