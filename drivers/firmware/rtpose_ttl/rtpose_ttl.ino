/*
 * rtpose_ttl: TTL trigger firmware for rtpose (Arduino Uno/Nano, Teensy 3.x/4.x).
 *
 * Receives 8-byte command frames over USB serial (protocol: rtpose_protocol.h,
 * docs/hardware.md), sets output lines high/low or pulses them for N ms, and
 * answers every valid frame with an 11-byte acknowledgement carrying the
 * sequence number and this board's micros() at the moment the line switched.
 *
 * Pulses are timed without delay(): loop() compares micros() with each
 * channel's scheduled end, so a pulse never stalls serial handling and
 * several channels can pulse at once. Wiring and flashing: README.md.
 */
#include "rtpose_protocol.h"

#define RTPOSE_BAUDRATE 115200

#if defined(TEENSYDUINO)
/* Teensy: native USB serial (the baud rate is ignored, 12/480 Mbit/s), 1 us micros(),
 * single-cycle pin writes, and send_now() pushes the ack out without waiting for
 * the USB packet to fill. */
#define RTPOSE_PIN_WRITE(pin, level) digitalWriteFast((pin), (level))
#define RTPOSE_FLUSH() Serial.send_now()
#else
/* Uno/Nano: USB-serial bridge at RTPOSE_BAUDRATE, micros() has 4 us resolution;
 * Serial.write() is buffered and interrupt driven, it does not block for 11 bytes. */
#define RTPOSE_PIN_WRITE(pin, level) digitalWrite((pin), (level))
#define RTPOSE_FLUSH()
#endif

/* Channel n drives CHANNEL_PINS[n]. Channel 8 is the on-board LED, handy for the
 * camera loop-back latency test. Keep 9 entries: hosts learn the count from PING. */
static const uint8_t CHANNEL_PINS[] = {2, 3, 4, 5, 6, 7, 8, 9, LED_BUILTIN};
#define NUM_CHANNELS ((uint8_t)(sizeof(CHANNEL_PINS) / sizeof(CHANNEL_PINS[0])))

static uint8_t pulse_active[NUM_CHANNELS];
static uint32_t pulse_end_us[NUM_CHANNELS];
static rtpose_parser_t parser;

static void send_ack(uint8_t status, uint8_t command, uint8_t channel, uint16_t seq, uint32_t device_us) {
  uint8_t frame[RTPOSE_ACK_FRAME_LEN];
  rtpose_encode_ack(frame, status, command, channel, seq, device_us);
  Serial.write(frame, RTPOSE_ACK_FRAME_LEN);
  RTPOSE_FLUSH();
}

static void set_line(uint8_t channel, uint8_t level) {
  pulse_active[channel] = 0; /* an explicit level cancels a running pulse */
  RTPOSE_PIN_WRITE(CHANNEL_PINS[channel], level ? HIGH : LOW);
}

static void all_low(void) {
  for (uint8_t ch = 0; ch < NUM_CHANNELS; ch++) {
    set_line(ch, 0);
  }
}

/* End the pulses that are due. Wrap-safe: works across the 71.6-minute micros() wrap. */
static void service_pulses(uint32_t now) {
  for (uint8_t ch = 0; ch < NUM_CHANNELS; ch++) {
    if (pulse_active[ch] && (int32_t)(now - pulse_end_us[ch]) >= 0) {
      set_line(ch, 0);
    }
  }
}

/* Same rules as drivers/outputs/device.py (the emulator's model). */
static void handle(const rtpose_command_t *cmd) {
  uint32_t now = micros();
  uint8_t status = RTPOSE_STATUS_OK;
  uint8_t channel_field = cmd->channel;
  switch (cmd->command) {
    case RTPOSE_CMD_PING:
      channel_field = NUM_CHANNELS;
      break;
    case RTPOSE_CMD_ALL_LOW:
      all_low();
      break;
    case RTPOSE_CMD_SET_HIGH:
    case RTPOSE_CMD_SET_LOW:
    case RTPOSE_CMD_PULSE:
      if (cmd->channel >= NUM_CHANNELS) {
        status = RTPOSE_STATUS_BAD_CHANNEL;
      } else if (cmd->command == RTPOSE_CMD_SET_HIGH) {
        set_line(cmd->channel, 1);
      } else if (cmd->command == RTPOSE_CMD_SET_LOW) {
        set_line(cmd->channel, 0);
      } else if (cmd->payload == 0) {
        status = RTPOSE_STATUS_BAD_PAYLOAD;
      } else {
        set_line(cmd->channel, 1);
        pulse_end_us[cmd->channel] = now + (uint32_t)cmd->payload * 1000UL;
        pulse_active[cmd->channel] = 1; /* after set_line, which clears it */
      }
      break;
    default:
      status = RTPOSE_STATUS_BAD_COMMAND;
      break;
  }
  send_ack(status, cmd->command, channel_field, cmd->seq, now);
}

void setup() {
  for (uint8_t ch = 0; ch < NUM_CHANNELS; ch++) {
    pinMode(CHANNEL_PINS[ch], OUTPUT);
  }
  all_low();
  memset(&parser, 0, sizeof(parser));
  Serial.begin(RTPOSE_BAUDRATE);
  /* Tell a listening host that the board (re)started and every line is low. */
  send_ack(RTPOSE_STATUS_BOOT, 0, NUM_CHANNELS, 0, micros());
}

void loop() {
  service_pulses(micros());
  rtpose_command_t cmd;
  while (Serial.available() > 0) {
    if (rtpose_parser_feed(&parser, (uint8_t)Serial.read(), &cmd)) {
      handle(&cmd);
    }
    service_pulses(micros());
  }
}
