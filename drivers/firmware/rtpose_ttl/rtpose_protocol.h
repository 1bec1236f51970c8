/*
 * rtpose trigger protocol, device side: constants, CRC-8 and the frame parser.
 *
 * Must match drivers/outputs/protocol.py; tests/test_trigger_firmware.py reads
 * this file and fails if any constant differs. Plain C, no Arduino calls, so
 * the same code can be compiled on a PC for the host-side firmware test.
 *
 * Command frame (host -> device, 8 bytes, little-endian):
 *   [0] RTPOSE_START_CMD  [1] command  [2] channel  [3..4] seq  [5..6] payload  [7] crc8(bytes 1..6)
 * Acknowledgement (device -> host, 11 bytes):
 *   [0] RTPOSE_START_ACK  [1] status  [2] command  [3] channel  [4..5] seq  [6..9] micros()  [10] crc8(bytes 1..9)
 */
#ifndef RTPOSE_PROTOCOL_H
#define RTPOSE_PROTOCOL_H

#include <stdint.h>
#include <string.h>

#define RTPOSE_PROTOCOL_VERSION 1

#define RTPOSE_START_CMD 0xA5
#define RTPOSE_START_ACK 0x5A

#define RTPOSE_CMD_SET_HIGH 0x01
#define RTPOSE_CMD_SET_LOW 0x02
#define RTPOSE_CMD_PULSE 0x03
#define RTPOSE_CMD_PING 0x04
#define RTPOSE_CMD_ALL_LOW 0x05

#define RTPOSE_STATUS_OK 0x00
#define RTPOSE_STATUS_BAD_CHANNEL 0x01
#define RTPOSE_STATUS_BAD_COMMAND 0x02
#define RTPOSE_STATUS_BAD_PAYLOAD 0x03
#define RTPOSE_STATUS_BOOT 0x80

#define RTPOSE_CRC8_POLY 0x07
#define RTPOSE_CRC8_INIT 0x00

#define RTPOSE_CMD_FRAME_LEN 8
#define RTPOSE_ACK_FRAME_LEN 11

/* CRC-8, polynomial x^8+x^2+x+1, init 0, no reflection: crc8("123456789") == 0xF4. */
static uint8_t rtpose_crc8(const uint8_t *data, uint8_t len) {
  uint8_t crc = RTPOSE_CRC8_INIT;
  for (uint8_t i = 0; i < len; i++) {
    crc ^= data[i];
    for (uint8_t bit = 0; bit < 8; bit++) {
      crc = (crc & 0x80) ? (uint8_t)((crc << 1) ^ RTPOSE_CRC8_POLY) : (uint8_t)(crc << 1);
    }
  }
  return crc;
}

typedef struct {
  uint8_t command;
  uint8_t channel;
  uint16_t seq;
  uint16_t payload;
} rtpose_command_t;

typedef struct {
  uint8_t buf[RTPOSE_CMD_FRAME_LEN];
  uint8_t len;
  uint16_t bad_frames; /* candidate frames rejected by the CRC */
} rtpose_parser_t;

/*
 * Feed one received byte. Returns 1 and fills *out when it completes a valid
 * frame. On a CRC mismatch the frame's first byte is dropped and the parser
 * resumes at the next start byte already received (resynchronisation), as
 * the host's parser does.
 */
static uint8_t rtpose_parser_feed(rtpose_parser_t *p, uint8_t byte, rtpose_command_t *out) {
  if (p->len == 0 && byte != RTPOSE_START_CMD) {
    return 0; /* garbage between frames */
  }
  p->buf[p->len++] = byte;
  if (p->len < RTPOSE_CMD_FRAME_LEN) {
    return 0;
  }
  if (rtpose_crc8(p->buf + 1, RTPOSE_CMD_FRAME_LEN - 2) == p->buf[RTPOSE_CMD_FRAME_LEN - 1]) {
    out->command = p->buf[1];
    out->channel = p->buf[2];
    out->seq = (uint16_t)(p->buf[3] | ((uint16_t)p->buf[4] << 8));
    out->payload = (uint16_t)(p->buf[5] | ((uint16_t)p->buf[6] << 8));
    p->len = 0;
    return 1;
  }
  p->bad_frames++;
  uint8_t next = 1;
  while (next < RTPOSE_CMD_FRAME_LEN && p->buf[next] != RTPOSE_START_CMD) {
    next++;
  }
  p->len = (uint8_t)(RTPOSE_CMD_FRAME_LEN - next);
  memmove(p->buf, p->buf + next, p->len);
  return 0;
}

/* Build an acknowledgement frame into out[RTPOSE_ACK_FRAME_LEN]. */
static void rtpose_encode_ack(uint8_t *out, uint8_t status, uint8_t command, uint8_t channel, uint16_t seq,
                              uint32_t device_us) {
  out[0] = RTPOSE_START_ACK;
  out[1] = status;
  out[2] = command;
  out[3] = channel;
  out[4] = (uint8_t)(seq & 0xFF);
  out[5] = (uint8_t)(seq >> 8);
  out[6] = (uint8_t)(device_us & 0xFF);
  out[7] = (uint8_t)((device_us >> 8) & 0xFF);
  out[8] = (uint8_t)((device_us >> 16) & 0xFF);
  out[9] = (uint8_t)((device_us >> 24) & 0xFF);
  out[10] = rtpose_crc8(out + 1, RTPOSE_ACK_FRAME_LEN - 2);
}

#endif /* RTPOSE_PROTOCOL_H */
