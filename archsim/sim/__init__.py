"""archsim.sim"""
