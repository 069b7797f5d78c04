"""Device nodes of agechat: microphone, camera and speaker (PortAudio, OpenCV)."""
