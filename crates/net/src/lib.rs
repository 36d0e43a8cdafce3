//! The foveal 3D CNN and a U-Net baseline in burn: preprocessing, training and sliding-window inference.
